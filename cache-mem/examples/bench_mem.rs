//! Benchmark of the memory backend against raw moka on the same bytes, in the same run.
//!
//! ```text
//! cargo run --release -p cache-mem --example bench_mem -- [--quick]
//! ```
//!
//! `put_blob`/`get_blob` of a ~10 KB document include JSON encoding/decoding, which raw
//! moka insert/get of the encoded bytes does not: the ratio shows that cost.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use cache_core::{BlobId, Cache, CacheOptions, codec};
use cache_mem::MemCache;
use cache_testkit::{
    bench::{Figure, time_async},
    conformance::{artifact_id, blob_id, sample_blob},
};

/// The allocator the `scancache` binary uses, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PACKAGES: usize = 70;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reps, ops) = if quick { (3, 500) } else { (7, 5_000) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(reps, ops));
}

async fn run(reps: usize, ops: usize) {
    let doc = sample_blob(1, PACKAGES);
    let bytes = Arc::new(codec::encode(&doc));
    println!(
        "document: {} bytes; {reps} repetitions of {ops} operations",
        bytes.len()
    );
    let cache = MemCache::new(&CacheOptions::default());
    let raw: moka::future::Cache<u64, Arc<Vec<u8>>> = moka::future::Cache::builder().build();
    let ids: Vec<BlobId> = (0..ops as u64).map(blob_id).collect();

    let raw_put = time_async(reps, ops, || async {
        for i in 0..ops as u64 {
            raw.insert(i, Arc::new(bytes.to_vec())).await;
        }
    })
    .await;
    let put = time_async(reps, ops, || async {
        for id in &ids {
            cache.put_blob(id, &doc).await.unwrap();
        }
    })
    .await;
    Figure {
        name: "put_blob 10KB",
        unit: "us/op",
        spread: put,
        baseline: Some(("raw moka insert of the same bytes", raw_put)),
        target: None,
        note: Some("ours includes JSON encoding"),
    }
    .report();

    let raw_get = time_async(reps, ops, || async {
        for i in 0..ops as u64 {
            assert!(raw.get(&i).await.is_some());
        }
    })
    .await;
    let get = time_async(reps, ops, || async {
        for id in &ids {
            assert!(cache.get_blob(id).await.unwrap().is_some());
        }
    })
    .await;
    Figure {
        name: "get_blob 10KB",
        unit: "us/op",
        spread: get,
        baseline: Some(("raw moka get", raw_get)),
        target: None,
        note: Some("ours includes JSON decoding"),
    }
    .report();

    for n in [10usize, 100, 1000] {
        let want: Vec<BlobId> = (0..n as u64).map(|i| blob_id(i * 2)).collect();
        let raw_missing = time_async(reps, 1, || async {
            for i in 0..n as u64 {
                std::hint::black_box(raw.get(&(i * 2)).await);
            }
        })
        .await;
        let missing = time_async(reps, 1, || async {
            cache.missing_blobs(&artifact_id(1), &want).await.unwrap();
        })
        .await;
        Figure {
            name: &format!("missing_blobs {n} IDs"),
            unit: "us/call",
            spread: missing,
            baseline: Some(("raw moka get per ID", raw_missing)),
            target: None,
            note: Some("ours also checks each entry's SchemaVersion"),
        }
        .report();
    }
}
