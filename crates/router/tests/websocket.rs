//! A WebSocket through the router: the upgrade is forwarded, and after the backend's 101 the
//! router copies bytes both ways.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server that sends every text and binary message back.
async fn echo_backend() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        if socket.send(message).await.is_err() {
                            return;
                        }
                    } else if message.is_close() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_websocket_echoes_through_the_router() {
    let echo = echo_backend().await;
    let mut router = TestRouter::start(table(1, vec![route("dev", "echo", &[echo])])).await;

    let stream = within("connect", TcpStream::connect(router.address))
        .await
        .unwrap();
    let (mut socket, response) = within(
        "handshake",
        tokio_tungstenite::client_async("ws://echo.dev.apps.test/socket", stream),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 101);

    within("send text", socket.send(Message::text("hello")))
        .await
        .unwrap();
    let answer = within("text echo", socket.next()).await.unwrap().unwrap();
    assert_eq!(answer.to_text().unwrap(), "hello");

    let payload = vec![7u8; 100_000];
    within("send binary", socket.send(Message::binary(payload.clone())))
        .await
        .unwrap();
    let answer = within("binary echo", socket.next()).await.unwrap().unwrap();
    assert_eq!(answer.into_data().as_ref(), payload.as_slice());

    within("close", socket.close(None)).await.unwrap();

    let page = router.status(&client()).await;
    assert_eq!(page.routes[0].counts.requests, 1);
    router.stopped().await;
}
