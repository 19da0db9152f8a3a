//! The router's HTTPS with a certificate it is given (a wildcard): served by SNI for the names
//! it covers with `X-Forwarded-Proto: https` to the backend, the page saying why for a name it
//! does not cover, and plain HTTP redirected. Certificates from ACME are tested against a real
//! ACME server in `crates/coding-job/tests/router_tls.rs`.

mod common;

use std::net::SocketAddr;

use cj_router::{CertificateFiles, Router, RouterConfig, TlsConfig};
use common::*;
use reqwest::StatusCode;
use tokio::sync::{oneshot, watch};

/// A CA and a `*.apps.test` certificate it signed, written to `dir`; the CA's PEM.
fn wildcard(dir: &std::path::Path) -> (CertificateFiles, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["*.apps.test".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let files = CertificateFiles {
        cert: dir.join("wildcard.pem"),
        key: dir.join("wildcard.key"),
    };
    std::fs::write(&files.cert, leaf.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, ca_cert.pem())
}

#[tokio::test]
async fn a_given_wildcard_is_served_for_the_names_it_covers_and_plain_http_is_redirected() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = wildcard(dir.path());
    let web = named_backend("web").await;
    let (_tables, receiver) = watch::channel(table(
        1,
        vec![
            route("production", "web", &[web.address]),
            route("dev", "web", &[web.address]),
        ],
    ));
    let mut config = RouterConfig::new("127.0.0.1:0".parse().unwrap(), DOMAIN);
    config.tls = Some(TlsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        files: Some(files),
        acme: None,
        redirect_http: true,
    });
    let router = Router::bind(config, receiver).await.unwrap();
    let (plain, tls) = (router.local_addr(), router.tls_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(router.serve(async move {
        let _ = stopped.await;
    }));

    let https = |name: &str, trusted: bool| {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .resolve(name, tls);
        let builder = if trusted {
            builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        } else {
            builder.danger_accept_invalid_certs(true)
        };
        builder.build().unwrap()
    };
    let url = |name: &str, address: SocketAddr| format!("https://{name}:{}/", address.port());

    // Covered: served with the given certificate, and the backend is told it was HTTPS.
    let response = within(
        "web over https",
        https("web.apps.test", true)
            .get(url("web.apps.test", tls))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-seen-x-forwarded-proto"], "https");
    assert_eq!(response.text().await.unwrap(), "web");

    // Not covered (`*.apps.test` is one label): the fallback certificate and a page saying why.
    let name = "web.dev.apps.test";
    let refused = https(name, true).get(url(name, tls)).send().await;
    assert!(
        refused.is_err(),
        "the fallback is not the CA's: {refused:?}"
    );
    let response = within("the page", https(name, false).get(url(name, tls)).send())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("No certificate could be obtained for <b>web.dev.apps.test</b>")
            && page.contains("does not cover it"),
        "{page}"
    );

    // Plain HTTP: a redirect to the same host and path over HTTPS.
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = within(
        "plain http",
        client
            .get(format!("http://{plain}/a/b?c=1"))
            .header("host", "web.apps.test")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response.headers()["location"],
        format!("https://web.apps.test:{}/a/b?c=1", tls.port()).as_str()
    );

    let _ = stop.send(());
    within("shutdown", serving).await.unwrap().unwrap();
}
