//! The shared conformance suite, and the size bound, against the memory backend.

use std::sync::Arc;

use async_trait::async_trait;
use cache_core::{Cache, CacheOptions};
use cache_mem::MemCache;
use cache_testkit::conformance::{Factory, blob_id, sample_blob};

struct Mem;

#[async_trait]
impl Factory for Mem {
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
        Arc::new(MemCache::new(&options))
    }
}

cache_testkit::conformance_tests!(Mem);

/// Many tasks writing far more than the bound never leave more than the bound stored,
/// and the most recently used entries survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn size_bound_holds_under_load() {
    const MAX: u64 = 256 * 1024;
    let cache = Arc::new(MemCache::new(&CacheOptions {
        max_size: Some(MAX),
        ..Default::default()
    }));
    let doc_len = cache_core::codec::encode(&sample_blob(0, 20)).len() as u64;
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let cache = Arc::clone(&cache);
        tasks.push(tokio::spawn(async move {
            for i in 0..200u64 {
                let n = t * 10_000 + i;
                cache
                    .put_blob(&blob_id(n), &sample_blob(n, 20))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // 1,600 entries of about doc_len bytes were written: far more than the bound.
    assert!(1600 * doc_len > 4 * MAX);
    let weighted = cache.weighted_size().await;
    assert!(
        weighted <= MAX,
        "weighted size {weighted} exceeds the bound {MAX}"
    );
    let stats = cache.stats().await.unwrap();
    assert!(
        stats.bytes <= MAX,
        "stored bytes {} exceed the bound",
        stats.bytes
    );
    assert!(stats.blobs > 0, "the bound must not evict everything");

    // Touch one entry, then push many new ones: LRU keeps the touched entry.
    let keep = blob_id(999_999);
    cache.put_blob(&keep, &sample_blob(1, 20)).await.unwrap();
    for i in 0..400u64 {
        cache
            .get_blob(&keep)
            .await
            .unwrap()
            .expect("recently used entry evicted");
        cache
            .put_blob(&blob_id(500_000 + i), &sample_blob(i, 20))
            .await
            .unwrap();
    }
    assert!(cache.weighted_size().await <= MAX);
    assert!(cache.get_blob(&keep).await.unwrap().is_some());
}
