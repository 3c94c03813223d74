//! The remote backend against a server without the claim RPCs, as a server older than
//! them is: the real service, served in-process, with the four routes answered by
//! `bad_route`, which is what any server answers for a route it does not know.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::Request, routing::any};
use cache_core::{Cache, CacheOptions, Claimed};
use cache_remote::{RemoteCache, RemoteConfig};
use cache_server::{Config, ServerState, native::SERVICE, twirp::TwirpError};
use cache_testkit::conformance::{blob_id, sample_blob};

/// What a server answers for a route it does not have.
async fn no_such_route(req: Request) -> TwirpError {
    TwirpError::bad_route(
        format!("no handler for path {:?}", req.uri().path()),
        req.method().as_str(),
        req.uri().path(),
    )
}

/// Serves the service without `Claim`, `Renew`, `Release` and `AwaitRelease` on a free
/// port; returns its URL, its state and the count of requests for those routes.
async fn older_server() -> (String, ServerState, Arc<AtomicUsize>) {
    let cache: Arc<dyn Cache> = Arc::new(cache_mem::MemCache::new(&CacheOptions::default()));
    let state = ServerState::new(cache, Config::default());
    let refused = Arc::new(AtomicUsize::new(0));
    let mut app = Router::new();
    for method in ["Claim", "Renew", "Release", "AwaitRelease"] {
        let refused = refused.clone();
        let route = any(move |req: Request| {
            refused.fetch_add(1, Ordering::SeqCst);
            no_such_route(req)
        });
        app = app.route(&format!("/twirp/{SERVICE}/{method}"), route);
    }
    let app = app.fallback_service(cache_server::router(state.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cache_server::serve(
        listener,
        app,
        None,
        std::future::pending(),
        Duration::ZERO,
    ));
    (url, state, refused)
}

/// Claims hold nothing and waits end at once, as on a backend without claims, after one
/// refused call (the cache stops asking); storing and reading go on as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_claim_rpcs_claims_hold_nothing_and_nobody_waits() {
    let (url, state, refused) = older_server().await;
    let cache = RemoteCache::new(&RemoteConfig::new(url), &CacheOptions::default()).unwrap();
    for _ in 0..2 {
        let claimed = cache
            .claim(&[blob_id(1), blob_id(2)], Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 2);
        for one in &claimed {
            assert!(matches!(one, Claimed::Owned(c) if c.is_unheld()), "{one:?}");
        }
        let claims: Vec<_> = claimed.into_iter().filter_map(Claimed::owned).collect();
        cache.renew(&claims, Duration::from_secs(30)).await.unwrap();
        cache.release(&claims).await.unwrap();
    }
    let started = std::time::Instant::now();
    assert!(
        cache
            .await_release(&blob_id(1), Duration::from_secs(10))
            .await
            .unwrap()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    cache
        .put_blob(&blob_id(1), &sample_blob(1, 1))
        .await
        .unwrap();
    assert!(cache.get_blob(&blob_id(1)).await.unwrap().is_some());
    assert_eq!(
        refused.load(Ordering::SeqCst),
        1,
        "the cache kept asking a server without claim RPCs"
    );
    let metrics = state.metrics().encode();
    assert!(
        metrics.contains(r#"scancache_server_requests_total{method="PutValues",code="ok"} 1"#),
        "{metrics}"
    );
}
