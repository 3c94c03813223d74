//! Serving a router on a listener: plain HTTP or TLS (rustls), HTTP/1.1 and HTTP/2,
//! and graceful shutdown (stop accepting, let requests in flight finish, bounded).

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use axum::Router;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::{
    error::{Error, Result},
    layers::Peer,
};

/// Loads a PEM certificate chain and private key into a TLS acceptor (HTTP/2 and
/// HTTP/1.1 offered by ALPN). An unreadable or invalid file is an error naming it.
pub fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let tls_err = |what, path: &Path, reason: String| Error::Tls {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| tls_err("certificate", cert, e.to_string()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| tls_err("certificate", cert, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(
            "certificate",
            cert,
            "holds no PEM certificate".into(),
        ));
    }
    let key_pem = std::fs::read(key).map_err(|e| tls_err("key", key, e.to_string()))?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| tls_err("key", key, format!("holds no PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("certificate", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| tls_err("key", key, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// How a [`serve`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Every request in flight finished within the grace period.
    pub drained: bool,
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits
/// up to `grace` for requests in flight.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<Stopped> {
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone().map_request(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                req
            },
        );
        let service = TowerToHyperService::new(app);
        match &tls {
            None => {
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::warn!("TLS handshake with {peer} failed: {e}");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!("TLS handshake with {peer} timed out");
                            return;
                        }
                    };
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_ok();
    Ok(Stopped { drained })
}

/// Binds a listener, naming the address in the error.
pub async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
