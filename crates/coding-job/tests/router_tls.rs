//! The router's HTTPS against a real ACME server (Debian's `pebble`, with its own DNS answering
//! every name with loopback): certificates obtained for two routes and served (HTTP/1.1 and
//! HTTP/2, verified against pebble's root), kept across a router restart and shared by a
//! second router without a new order, renewed when the renewal window says so; and a name
//! whose challenge fails served a page that says so while the other name is served.
//!
//! The standalone routers (`coding-job router`) keep their certificates through the server's
//! API; `dev`'s own router keeps them in its store in process.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use support::pebble::Pebble;
use support::{Dev, IMAGE, free_port, http_get_host, wait_for};

const DOMAIN: &str = "cj.example.com";
const WWW: &str = "www.cj.example.com";
const API: &str = "api.cj.example.com";
/// Obtaining a certificate from pebble takes a second or two; starting containers some more.
const SERVED_IN: Duration = Duration::from_secs(90);

fn site_yaml() -> String {
    let job = |name: &str| {
        format!(
            "  - name: {name}\n    image: {IMAGE}\n    port: auto\n    route: {name}\n    command: [sh, -c, 'mkdir -p /tmp/w && echo \"{name} ok\" > /tmp/w/index.html && exec httpd -f -p \"$PORT\" -h /tmp/w']\n    check: {{ http: /, interval: 1s, timeout: 1s, retries: 2 }}\n"
        )
    };
    format!("service: site\njobs:\n{}{}", job("www"), job("api"))
}

/// What one HTTPS request got: the leaf certificate served, the protocol ALPN chose, and the
/// answer.
#[derive(Debug)]
struct Fetched {
    leaf: Vec<u8>,
    http2: bool,
    status: u16,
    body: String,
}

/// GET `https://NAME/` at `address`, offering `alpn`; verified against `root` unless `None`.
fn fetch(
    address: SocketAddr,
    name: &str,
    root: Option<&str>,
    alpn: &[&[u8]],
) -> Result<Fetched, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            fetch_async(address, name, root, alpn),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
    })
}

async fn fetch_async(
    address: SocketAddr,
    name: &str,
    root: Option<&str>,
    alpn: &[&[u8]],
) -> Result<Fetched, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut config = match root {
        Some(root) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap())
                .unwrap();
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|error| error.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    let tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|error| error.to_string())?;
    let (_, session) = tls.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| leaf.to_vec())
        .ok_or("no certificate")?;
    let http2 = session.alpn_protocol() == Some(b"h2");
    let request = hyper::Request::get(format!("https://{name}/"))
        .header("host", name)
        .body(Empty::<Bytes>::new())
        .unwrap();
    let io = TokioIo::new(tls);
    let response = if http2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        let mut request = request;
        request.headers_mut().remove("host");
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|error| error.to_string())?;
        tokio::spawn(connection);
        let mut request = request;
        *request.uri_mut() = "/".parse().unwrap();
        sender.send_request(request).await
    }
    .map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    Ok(Fetched {
        leaf,
        http2,
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Accepts any certificate: to read the page a name without one is served.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Waits until `name` is served at `tls` with a certificate pebble issued and the route's
/// page; returns the leaf.
fn wait_served(tls: SocketAddr, name: &str, root: &str, expected: &str) -> Vec<u8> {
    let mut last = String::new();
    let fetched = wait_for(
        &format!("{name} served over HTTPS"),
        SERVED_IN,
        || match fetch(tls, name, Some(root), &[b"http/1.1"]) {
            Ok(fetched) if fetched.status == 200 && fetched.body.contains(expected) => {
                Some(fetched)
            }
            other => {
                last = format!("{other:?}");
                None
            }
        },
    );
    assert!(!last.contains("panicked"), "{last}");
    fetched.leaf
}

/// A standalone `coding-job router`, killed when dropped.
struct RouterProcess {
    child: Child,
    log: std::path::PathBuf,
    plain: u16,
    tls: u16,
}

impl RouterProcess {
    fn start(
        server: &str,
        pebble: &Pebble,
        dir: &std::path::Path,
        plain: u16,
        tls: u16,
        extra: &[&str],
    ) -> RouterProcess {
        let log = dir.join(format!("router-{plain}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_coding-job"))
            .args(["--server", server, "router", "--domain", DOMAIN])
            .args(["--listen", &format!("127.0.0.1:{plain}")])
            .args(["--tls-listen", &format!("127.0.0.1:{tls}")])
            .args(["--acme-directory", &pebble.directory_url()])
            .args(["--acme-email", "ops@example.com"])
            .arg("--acme-ca-cert")
            .arg(pebble.ca_cert())
            .args(extra)
            .env("RUST_LOG", "warn,cj_router=info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("failed to start coding-job router");
        let router = RouterProcess {
            child,
            log,
            plain,
            tls,
        };
        wait_for("the router to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", tls)).ok()
        });
        router
    }

    fn tls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls))
    }

    fn plain(&self) -> String {
        format!("127.0.0.1:{}", self.plain)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn certificates_from_acme_are_served_kept_across_restarts_shared_and_renewed() {
    let dir = tempfile::tempdir().unwrap();
    // Pebble validates on this port: the first router's plain listener.
    let (plain, tls) = (free_port(), free_port());
    let pebble = Pebble::start(plain);
    let root = pebble.issuing_root();
    let dev = Dev::start();
    dev.push_yaml("site.yaml", &site_yaml());
    dev.ok(&["up", "site"]);

    let router = RouterProcess::start(&dev.url, &pebble, dir.path(), plain, tls, &[]);
    let www = wait_served(router.tls(), WWW, &root, "www ok");
    let api = wait_served(router.tls(), API, &root, "api ok");
    assert_ne!(www, api, "one certificate per name");
    assert_eq!(pebble.orders(), 2, "{}", router.log());
    // HTTP/2 by ALPN, with the same certificate.
    let over_h2 = fetch(router.tls(), WWW, Some(&root), &[b"h2", b"http/1.1"]).unwrap();
    assert!(over_h2.http2, "{over_h2:?}");
    assert_eq!((over_h2.status, over_h2.leaf == www), (200, true));
    assert!(over_h2.body.contains("www ok"), "{over_h2:?}");
    // Plain HTTP is still served without --redirect-http.
    let (status, body) = http_get_host(&router.plain(), WWW, "/").unwrap();
    assert_eq!((status, body.trim()), (200, "www ok"));

    // Restarted: the same certificates, from the store, and no new order.
    drop(router);
    let router = RouterProcess::start(
        &dev.url,
        &pebble,
        dir.path(),
        plain,
        tls,
        &["--redirect-http"],
    );
    assert_eq!(wait_served(router.tls(), WWW, &root, "www ok"), www);
    assert_eq!(wait_served(router.tls(), API, &root, "api ok"), api);
    let (status, _) = http_get_host(&router.plain(), WWW, "/x?y=1").unwrap();
    assert_eq!(status, 308);
    let (status, _) =
        http_get_host(&router.plain(), WWW, "/.well-known/acme-challenge/unknown").unwrap();
    assert_eq!(status, 404, "a challenge is never redirected");

    // A second router serves the same certificates without ordering.
    let second = RouterProcess::start(&dev.url, &pebble, dir.path(), free_port(), free_port(), &[]);
    assert_eq!(wait_served(second.tls(), WWW, &root, "www ok"), www);
    assert_eq!(wait_served(second.tls(), API, &root, "api ok"), api);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(pebble.orders(), 2, "{}\n{}", router.log(), second.log());
    drop(second);

    // Renewal: with ten years' window, a certificate of five is renewed at once.
    drop(router);
    let router = RouterProcess::start(
        &dev.url,
        &pebble,
        dir.path(),
        plain,
        tls,
        &["--acme-renew-before", "3650d"],
    );
    for (name, old, expected) in [(WWW, &www, "www ok"), (API, &api, "api ok")] {
        let mut last = None;
        wait_for(&format!("{name}'s certificate renewed"), SERVED_IN, || {
            last = Some(fetch(router.tls(), name, Some(&root), &[b"http/1.1"]));
            match &last {
                Some(Ok(fetched)) if fetched.leaf != *old && fetched.body.contains(expected) => {
                    Some(())
                }
                _ => None,
            }
        });
    }
    assert_eq!(pebble.orders(), 4, "{}", router.log());
}

#[test]
fn a_name_whose_challenge_fails_gets_an_error_page_and_the_other_is_served() {
    // Pebble validates on dev's router's plain port; the failing name resolves to an address
    // nothing listens on.
    let plain = free_port();
    let pebble = Pebble::start(plain);
    pebble.map_name(API, "127.0.0.2");
    let root = pebble.issuing_root();
    let ca_cert = pebble.ca_cert();
    let dev = Dev::start_with_args_logged(&[
        "--router-listen",
        &format!("127.0.0.1:{plain}"),
        "--domain",
        DOMAIN,
        "--tls-listen",
        "127.0.0.1:0",
        "--acme-directory",
        &pebble.directory_url(),
        "--acme-ca-cert",
        ca_cert.to_str().unwrap(),
    ]);
    let tls: SocketAddr = dev
        .announced
        .iter()
        .find_map(|line| line.trim_start().strip_prefix("router https:"))
        .and_then(|rest| rest.trim().strip_prefix("https://"))
        .expect("dev did not announce its router's HTTPS")
        .parse()
        .unwrap();
    dev.push_yaml("site.yaml", &site_yaml());
    dev.ok(&["up", "site"]);

    wait_served(tls, WWW, &root, "www ok");
    let page = wait_for("the failed name's page", SERVED_IN, || {
        let fetched = fetch(tls, API, None, &[b"http/1.1"]).ok()?;
        (fetched.status == 503 && fetched.body.contains("127.0.0.2")).then_some(fetched)
    });
    assert!(
        page.body
            .contains("No certificate could be obtained for <b>api.cj.example.com</b>"),
        "{}",
        page.body
    );
    assert!(
        fetch(tls, API, Some(&root), &[b"http/1.1"]).is_err(),
        "the fallback certificate is not pebble's"
    );
    let log = dev.stderr();
    assert!(
        log.lines()
            .any(|line| line.contains("no certificate could be obtained") && line.contains(API)),
        "{log}"
    );
    // The name that works is still served.
    wait_served(tls, WWW, &root, "www ok");
}
