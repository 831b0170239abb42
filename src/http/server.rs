//! The HTTP/1.1 server loop: the router on hyper connections, with the limits slow or greedy
//! clients meet. A connection that has not sent a whole request head within the header
//! timeout is closed, whether it is new, sending its headers a byte at a time, or idle
//! between requests; a request body must arrive within the body timeout; and beyond the
//! connection cap a new connection is answered `503` with `Retry-After` and closed, so the
//! service keeps answering everyone else.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::{Service, ServiceExt};
use tower_http::timeout::RequestBodyDeadlineLayer;

pub use crate::config::HttpLimits as Limits;

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 169\r\n\r\n\
{\"type\":\"urn:clinic:problem:service_unavailable\",\"title\":\"Service Unavailable\",\"status\":503,\
\"detail\":\"Too many connections; retry shortly.\",\"code\":\"service_unavailable\"}";

/// Serves `app` on `listener` until `shutdown` completes, then lets open requests finish
/// (at most the header timeout) before returning.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let app = app.layer(RequestBodyDeadlineLayer::new(limits.body_timeout));
    let mut make = app.into_make_service_with_connect_info::<SocketAddr>();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        // Answers go out as soon as they are written, not held back for the next segment.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY failed");
        }
        let Ok(service) = make.call(remote).await.map_err(|e: Infallible| e);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = TowerToHyperService::new(
                service.map_request(|r: hyper::Request<Incoming>| r.map(axum::body::Body::new)),
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                done = conn.as_mut() => log_end(done),
                () = async { drop(stop.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    if let Ok(done) = tokio::time::timeout(limits.header_timeout, conn).await {
                        log_end(done);
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(limits.header_timeout, slots.acquire_many(all)).await;
}

fn log_end(done: hyper::Result<()>) {
    if let Err(e) = done
        && !e.is_timeout()
        && !e.is_incomplete_message()
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(BUSY).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::BUSY;

    #[test]
    fn the_refusal_is_a_whole_http_answer() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "service_unavailable");
    }
}
