//! `follow_server` against a small local server that streams two tables and ends the stream:
//! the follower sends them on, dials again, and keeps the last table while the server fails.

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cj_api::routes::RouteTable;
use common::*;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use tokio::sync::watch;

fn line(table: &RouteTable) -> String {
    let mut line = serde_json::to_string(table).unwrap();
    line.push('\n');
    line
}

#[tokio::test]
async fn follows_the_table_stream_and_dials_again_when_it_ends() {
    let first = table(
        1,
        vec![route("dev", "web", &["127.0.0.1:9001".parse().unwrap()])],
    );
    let second = table(
        2,
        vec![route("dev", "web", &["127.0.0.1:9002".parse().unwrap()])],
    );
    let third = table(
        3,
        vec![route("dev", "api", &["127.0.0.1:9003".parse().unwrap()])],
    );
    // The first table split across two chunks; a blank line is no table.
    let first_line = line(&first);
    let (head, tail) = first_line.split_at(first_line.len() / 2);
    let first_stream = vec![head.to_owned(), tail.to_owned() + &line(&second) + "\n"];
    let second_stream = vec![line(&third)];

    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    let server = serve_backend(move |request: hyper::Request<hyper::body::Incoming>| {
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value == "Bearer secret");
        let watching =
            request.uri().path() == "/v1/routes" && request.uri().query() == Some("watch=true");
        let chunks = match counter.fetch_add(1, Ordering::SeqCst) {
            _ if !authorized || !watching => None,
            0 => Some(first_stream.clone()),
            1 => Some(second_stream.clone()),
            // From then on the server is failing.
            _ => None,
        };
        async move {
            let Some(chunks) = chunks else {
                let mut response = Response::new(Full::new(Bytes::new()).boxed_unsync());
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                return response;
            };
            let frames = futures_util::stream::iter(chunks).then(|chunk| async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, Infallible>(Frame::data(Bytes::from(chunk)))
            });
            Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)))
        }
    })
    .await;

    let (tx, mut rx) = watch::channel(RouteTable::default());
    let follower = tokio::spawn(async move {
        cj_router::follow_server(
            &format!("http://{server}/"),
            Some("secret".to_owned()),
            // No overall timeout: the answer is a stream.
            reqwest::Client::builder().no_proxy().build().unwrap(),
            tx,
        )
        .await;
    });

    let mut seen = Vec::new();
    within("the third table, from a second connection", async {
        while seen.last() != Some(&3) {
            rx.changed().await.unwrap();
            seen.push(rx.borrow_and_update().generation);
        }
    })
    .await;
    assert!(seen.ends_with(&[2, 3]), "{seen:?}");
    assert_eq!(*rx.borrow(), third);

    // The server fails from now on; the last table stays.
    within("failing dials", async {
        while requests.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(*rx.borrow(), third);
    assert!(!rx.has_changed().unwrap());

    // With no router left to feed, the follower ends.
    drop(rx);
    within("the follower ends", follower).await.unwrap();
}

#[tokio::test]
async fn a_list_of_servers_follows_the_first_that_answers() {
    let only = table(
        7,
        vec![route("dev", "web", &["127.0.0.1:9001".parse().unwrap()])],
    );
    let stream = vec![line(&only)];
    let server = serve_backend(move |_request: hyper::Request<hyper::body::Incoming>| {
        let chunks = stream.clone();
        async move {
            let frames = futures_util::stream::iter(chunks)
                .map(|chunk| Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))))
                .chain(futures_util::stream::pending());
            Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)))
        }
    })
    .await;
    // A port nothing listens on: connections to it are refused.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    let (tx, mut rx) = watch::channel(RouteTable::default());
    let servers = format!("http://{refusing}, http://{server}/");
    let follower = tokio::spawn(async move {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        cj_router::follow_server(&servers, None, http, tx).await;
    });
    within("the table from the second server", async {
        while rx.borrow_and_update().generation != 7 {
            rx.changed().await.unwrap();
        }
    })
    .await;
    assert_eq!(*rx.borrow(), only);
    drop(rx);
    follower.abort();
}
