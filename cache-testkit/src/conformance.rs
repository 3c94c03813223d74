//! The conformance suite: every behaviour of the [`Cache`] contract, run against each
//! backend's real thing.
//!
//! A backend's `tests/conformance.rs` implements [`Factory`] (a fresh, empty cache per
//! call: a temp dir, a new Redis database, …) and expands
//! [`conformance_tests!`](crate::conformance_tests), which makes one `#[tokio::test]` per
//! case so a failure names the behaviour that broke:
//!
//! ```text
//! struct Mem;
//! #[async_trait::async_trait]
//! impl cache_testkit::Factory for Mem {
//!     async fn create(&self, options: CacheOptions) -> Arc<dyn Cache> {
//!         Arc::new(MemCache::new(&options))
//!     }
//! }
//! cache_testkit::conformance_tests!(Mem);
//! ```
//!
//! Every case is written once, inside the `suite!` block below: the macro defines the
//! case's function and adds it to `conformance_tests!`, so adding a case is one edit. The
//! test crate needs `tokio` (features `macros`, `rt-multi-thread`) as a dev-dependency.
//! Corrupt and stale entries are planted through [`Cache::import`], which stores raw
//! bytes as given, so no backend needs a test-only hook.

use std::{
    ops::ControlFlow,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use async_trait::async_trait;
use cache_core::{
    ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, CacheOptions, Claim, ClaimOptions, Claimed,
    Digest, EntryKey, EntryKind, GcOptions, Os, Package, PackageInfo, RawEntry, Waited, codec,
};
use serde_json::json;

/// Defines each case as a public function taking a [`Factory`], and the
/// `conformance_tests!` macro that runs every one of them as a test of its own.
macro_rules! suite {
    ($($(#[$attr:meta])* async fn $case:ident($f:ident) $body:block)*) => {
        $(
            $(#[$attr])*
            pub async fn $case($f: &dyn Factory) $body
        )*

        /// Expands to one `#[tokio::test]` per conformance case, each calling the case
        /// with the given [`Factory`] expression (evaluated in the test, so it may
        /// `return` early to skip).
        #[macro_export]
        macro_rules! conformance_tests {
            ($factory:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        $crate::conformance::$case(&$factory).await;
                    }
                )*
            };
        }
    };
}

/// Makes fresh, empty caches of the backend under test.
#[async_trait]
pub trait Factory: Send + Sync {
    /// Returns a new cache with nothing in it, configured with `options`.
    async fn create(&self, options: CacheOptions) -> Arc<dyn Cache>;
}

/// A blob ID made from a number, distinct for every `n`.
pub fn blob_id(n: u64) -> BlobId {
    BlobId::from(numbered_digest(0xb1, n))
}

/// An artifact ID made from a number, distinct for every `n`.
pub fn artifact_id(n: u64) -> ArtifactId {
    ArtifactId::from(numbered_digest(0xa1, n))
}

fn numbered_digest(tag: u8, n: u64) -> Digest {
    let mut bytes = [tag; 32];
    bytes[24..].copy_from_slice(&n.to_be_bytes());
    Digest::from_sha256(bytes)
}

/// A realistic blob document (about `packages` × 150 bytes) that names `n`.
pub fn sample_blob(n: u64, packages: usize) -> BlobInfo {
    let diff_id = numbered_digest(0xd1, n).to_string();
    BlobInfo {
        schema_version: BlobInfo::SCHEMA_VERSION,
        size: 5_818_880 + n as i64,
        diff_id,
        created_by: format!("ADD file:{n} in / "),
        os: Some(Os {
            family: "alpine".into(),
            name: "3.10.4".into(),
            ..Default::default()
        }),
        package_infos: vec![PackageInfo {
            file_path: "lib/apk/db/installed".into(),
            packages: (0..packages)
                .map(|i| Package {
                    id: format!("pkg{i}@1.{n}-r0"),
                    name: format!("pkg{i}"),
                    version: format!("1.{n}-r0"),
                    arch: "x86_64".into(),
                    licenses: vec!["MIT".into()],
                    maintainer: "Someone <someone@example.org>".into(),
                    analyzed_by: "apk".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A small artifact document that names `n`.
pub fn sample_artifact(n: u64) -> ArtifactInfo {
    ArtifactInfo {
        schema_version: ArtifactInfo::SCHEMA_VERSION,
        architecture: "amd64".into(),
        created: format!("2020-01-23T16:53:06.{n:09}Z"),
        docker_version: "18.06.1-ce".into(),
        os: "linux".into(),
        ..Default::default()
    }
}

fn raw(key: EntryKey, value: &[u8]) -> RawEntry {
    RawEntry {
        key,
        value: value.to_vec(),
        expires_at: None,
    }
}

async fn fresh(f: &dyn Factory) -> Arc<dyn Cache> {
    f.create(CacheOptions::default()).await
}

/// Claims one key, which must be granted.
async fn owned(c: &dyn Cache, n: u64, lease: Duration) -> Claim {
    match c.claim(&[blob_id(n)], lease).await.unwrap().pop() {
        Some(Claimed::Owned(claim)) => {
            assert!(
                !claim.is_unheld(),
                "{} grants claims that hold nothing",
                c.backend_name()
            );
            claim
        }
        other => panic!("claim of blob {n} not granted: {other:?}"),
    }
}

/// Whether claiming one key now is refused as busy (a granted claim is released again).
async fn busy(c: &dyn Cache, n: u64) -> bool {
    match c
        .claim(&[blob_id(n)], Duration::from_secs(30))
        .await
        .unwrap()
        .pop()
    {
        Some(Claimed::Busy) => true,
        Some(Claimed::Owned(claim)) => {
            c.release(&[claim]).await.unwrap();
            false
        }
        None => panic!("claim answered nothing"),
    }
}

/// Waits for blob `n` in a task of its own; the handle yields the outcome and when it
/// came.
fn waiter(
    c: &Arc<dyn Cache>,
    n: u64,
    options: ClaimOptions,
) -> tokio::task::JoinHandle<(Waited, Instant)> {
    let c = Arc::clone(c);
    tokio::spawn(async move {
        let waited = c.wait_for(&blob_id(n), &options).await.unwrap();
        (waited, Instant::now())
    })
}

suite! {
    /// A stored report comes back byte for byte, apart from a blob of the same ID; it is
    /// listed, counted, kept by `gc` and removed by `delete` and `clear` as its own kind.
    async fn stored_reports_are_entries_of_their_own_kind(f) {
        let c = fresh(f).await;
        let id = numbered_digest(0x7e, 1);
        let body = b"Target    .\nOS        not detected\n\xff binary is fine".to_vec();
        assert_eq!(c.get_report(&id).await.unwrap(), None);
        c.put_report(&id, &body).await.unwrap();
        c.put_blob(&BlobId::from(id.clone()), &sample_blob(1, 1)).await.unwrap();
        assert_eq!(c.get_report(&id).await.unwrap(), Some(body.clone()));
        let mut kinds = Vec::new();
        c.list(Some(EntryKind::Report), &mut |m| {
            kinds.push((m.key.kind, m.key.id));
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(kinds, [(EntryKind::Report, id.clone())]);
        let s = c.stats().await.unwrap();
        assert_eq!((s.artifacts, s.blobs, s.reports), (0, 1, 1));
        let r = c.gc().await.unwrap();
        assert_eq!((r.expired, r.stale), (0, 0), "a sound report is kept");
        assert_eq!(c.get_report(&id).await.unwrap(), Some(body.clone()));
        assert_eq!(c.delete(&[EntryKey::report(&id)]).await.unwrap(), 1);
        assert_eq!(c.get_report(&id).await.unwrap(), None);
        assert!(c.get_blob(&BlobId::from(id.clone())).await.unwrap().is_some());
        c.put_report(&id, &body).await.unwrap();
        c.clear().await.unwrap();
        assert_eq!(c.get_report(&id).await.unwrap(), None);
    }

    /// A truncated or altered stored report is a corrupt entry, never part of a report;
    /// `gc` removes it as stale without taking it for a document, and keeps sound ones.
    async fn damaged_stored_reports_are_corrupt_and_gc_removes_them(f) {
        let c = fresh(f).await;
        let stored = cache_core::report::encode(b"0123456789");
        let truncated = &stored[..stored.len() - 1];
        let mut altered = stored.clone();
        *altered.last_mut().unwrap() = b'X';
        let ids: Vec<Digest> = (0..4).map(|n| numbered_digest(0x7e, 10 + n)).collect();
        c.import(&[
            raw(EntryKey::report(&ids[0]), truncated),
            raw(EntryKey::report(&ids[1]), &altered),
            raw(EntryKey::report(&ids[2]), br#"{"SchemaVersion":2}"#),
            raw(EntryKey::report(&ids[3]), &stored),
        ])
        .await
        .unwrap();
        for id in &ids[..3] {
            let err = c.get_report(id).await.unwrap_err();
            assert!(err.is_corrupt() && err.to_string().contains(id.as_str()), "{err}");
        }
        assert_eq!(c.get_report(&ids[3]).await.unwrap(), Some(b"0123456789".to_vec()));
        let r = c.gc().await.unwrap();
        assert_eq!(r.stale, 3, "{r:?}");
        assert_eq!(c.stats().await.unwrap().reports, 1);
        assert_eq!(c.get_report(&ids[3]).await.unwrap(), Some(b"0123456789".to_vec()));
    }

    /// A stored report gets the TTL of every put, and one over the document size cap is
    /// refused and not stored.
    async fn stored_reports_follow_the_ttl_and_the_size_cap(f) {
        let body = vec![b'x'; 1000];
        let c = f
            .create(CacheOptions {
                max_document_size: Some(500),
                ..Default::default()
            })
            .await;
        let id = numbered_digest(0x7e, 20);
        let err = c.put_report(&id, &body).await.unwrap_err();
        assert!(err.is_document_too_large(), "{err}");
        assert_eq!(c.get_report(&id).await.unwrap(), None);
        c.put_report(&id, &body[..100]).await.unwrap();
        assert_eq!(c.get_report(&id).await.unwrap(), Some(body[..100].to_vec()));

        let c = f
            .create(CacheOptions {
                ttl: Some(Duration::from_secs(1)),
                ..Default::default()
            })
            .await;
        c.put_report(&id, &body).await.unwrap();
        let mut expiry = None;
        c.list(Some(EntryKind::Report), &mut |m| {
            expiry = m.expires_at;
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert!(expiry.is_some(), "the report has the TTL");
        assert_eq!(c.get_report(&id).await.unwrap(), Some(body.clone()));
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(c.get_report(&id).await.unwrap(), None);
    }

    /// Put, then get, of both kinds returns equal documents.
    async fn put_then_get_returns_equal_documents(f) {
        let c = fresh(f).await;
        let (a, b) = (artifact_id(1), blob_id(1));
        c.put_artifact(&a, &sample_artifact(1)).await.unwrap();
        c.put_blob(&b, &sample_blob(1, 3)).await.unwrap();
        assert_eq!(c.get_artifact(&a).await.unwrap(), Some(sample_artifact(1)));
        assert_eq!(c.get_blob(&b).await.unwrap(), Some(sample_blob(1, 3)));
        // The two kinds live in separate spaces: the same digest is a different entry.
        let same_digest_blob = BlobId::from(a.digest().clone());
        assert_eq!(c.get_blob(&same_digest_blob).await.unwrap(), None);
    }

    /// A miss is `Ok(None)` for both kinds.
    async fn get_of_absent_entry_is_none(f) {
        let c = fresh(f).await;
        assert_eq!(c.get_artifact(&artifact_id(9)).await.unwrap(), None);
        assert_eq!(c.get_blob(&blob_id(9)).await.unwrap(), None);
    }

    /// A second put of the same ID replaces the first.
    async fn put_overwrites(f) {
        let c = fresh(f).await;
        let b = blob_id(2);
        c.put_blob(&b, &sample_blob(1, 1)).await.unwrap();
        c.put_blob(&b, &sample_blob(2, 5)).await.unwrap();
        assert_eq!(c.get_blob(&b).await.unwrap(), Some(sample_blob(2, 5)));
        let a = artifact_id(2);
        c.put_artifact(&a, &sample_artifact(1)).await.unwrap();
        c.put_artifact(&a, &sample_artifact(2)).await.unwrap();
        assert_eq!(c.get_artifact(&a).await.unwrap(), Some(sample_artifact(2)));
    }

    /// Fields the model does not know are stored and returned unchanged.
    async fn unknown_fields_survive_storage(f) {
        let c = fresh(f).await;
        let doc = json!({
            "SchemaVersion": 2,
            "DiffID": "sha256:aa",
            "FromTheFuture": {"a": [1, 2, 3]},
            "PackageInfos": [{"FilePath": "p", "Packages": [{"Name": "x", "Identifier": {"PURL": "pkg:x"}}]}]
        });
        let blob: BlobInfo = serde_json::from_value(doc.clone()).unwrap();
        let b = blob_id(3);
        c.put_blob(&b, &blob).await.unwrap();
        let back = c.get_blob(&b).await.unwrap().unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), doc);
    }

    /// `missing_blobs` reports the artifact flag and absent blobs in input order.
    async fn missing_blobs_reports_absent_in_input_order(f) {
        let c = fresh(f).await;
        let a = artifact_id(4);
        let ids: Vec<BlobId> = [7, 3, 9, 1, 5].into_iter().map(blob_id).collect();
        let m = c.missing_blobs(&a, &ids).await.unwrap();
        assert!(m.artifact);
        assert_eq!(m.blobs, ids);

        c.put_blob(&ids[1], &sample_blob(3, 1)).await.unwrap();
        c.put_blob(&ids[3], &sample_blob(1, 1)).await.unwrap();
        c.put_artifact(&a, &sample_artifact(4)).await.unwrap();
        let m = c.missing_blobs(&a, &ids).await.unwrap();
        assert!(!m.artifact);
        assert_eq!(
            m.blobs,
            vec![ids[0].clone(), ids[2].clone(), ids[4].clone()]
        );

        let m = c.missing_blobs(&a, &[]).await.unwrap();
        assert!(!m.artifact && m.blobs.is_empty());
    }

    /// `missing_blobs` with 1,000 IDs, half of them stored, returns exactly the other half.
    async fn missing_blobs_with_1000_ids(f) {
        let c = fresh(f).await;
        let ids: Vec<BlobId> = (0..1000).map(blob_id).collect();
        let stored: Vec<RawEntry> = ids
            .iter()
            .step_by(2)
            .map(|id| raw(EntryKey::blob(id), &codec::encode(&sample_blob(0, 1))))
            .collect();
        c.import(&stored).await.unwrap();
        let m = c.missing_blobs(&artifact_id(5), &ids).await.unwrap();
        let want: Vec<BlobId> = ids.iter().skip(1).step_by(2).cloned().collect();
        assert_eq!(m.blobs.len(), 500);
        assert_eq!(m.blobs, want);
    }

    /// Entries with an old `SchemaVersion` are missing, but still readable.
    async fn stale_schema_counts_as_missing(f) {
        let c = fresh(f).await;
        let (a, b, current) = (artifact_id(6), blob_id(6), blob_id(7));
        c.import(&[
            raw(
                EntryKey::artifact(&a),
                br#"{"SchemaVersion":0,"OS":"linux"}"#,
            ),
            raw(
                EntryKey::blob(&b),
                br#"{"SchemaVersion":1,"DiffID":"sha256:aa"}"#,
            ),
        ])
        .await
        .unwrap();
        c.put_blob(&current, &sample_blob(7, 1)).await.unwrap();
        let m = c.missing_blobs(&a, &[b.clone(), current]).await.unwrap();
        assert!(m.artifact, "stale artifact must count as missing");
        assert_eq!(m.blobs, vec![b.clone()]);
        let old = c
            .get_blob(&b)
            .await
            .unwrap()
            .expect("stale blob is still readable");
        assert!(!old.is_current());
    }

    /// Undecodable entries are missing; getters return a corrupt error naming the ID.
    async fn undecodable_entries_count_as_missing_and_get_names_the_id(f) {
        let c = fresh(f).await;
        let a = artifact_id(8);
        let bad: Vec<BlobId> = (80..84).map(blob_id).collect();
        let good = blob_id(85);
        let values: [&[u8]; 4] = [
            b"not json at all",
            b"[1,2,3]",
            br#"{"SchemaVersion":2,"PackageInfos":"#,
            b"\xff\xfe\x00binary",
        ];
        let mut entries = vec![raw(EntryKey::artifact(&a), b"{{{")];
        entries.extend(
            bad.iter()
                .zip(values)
                .map(|(id, v)| raw(EntryKey::blob(id), v)),
        );
        c.import(&entries).await.unwrap();
        c.put_blob(&good, &sample_blob(85, 1)).await.unwrap();

        let mut all = bad.clone();
        all.push(good.clone());
        let m = c.missing_blobs(&a, &all).await.unwrap();
        assert!(m.artifact);
        // The truncated document starts like a current one; a backend may judge it by its
        // prefix, so only the unmistakably broken ones are required to be missing.
        for id in [&bad[0], &bad[1], &bad[3]] {
            assert!(m.blobs.contains(id), "{id} must count as missing");
        }
        assert!(!m.blobs.contains(&good));

        for id in &bad {
            let err = c
                .get_blob(id)
                .await
                .expect_err("corrupt blob must be an error");
            assert!(err.is_corrupt(), "{err}");
            assert!(
                err.to_string().contains(id.as_str()),
                "error must name the ID: {err}"
            );
        }
        let err = c.get_artifact(&a).await.expect_err("corrupt artifact");
        assert!(
            err.is_corrupt() && err.to_string().contains(a.as_str()),
            "{err}"
        );
        // Other entries are untouched.
        assert_eq!(c.get_blob(&good).await.unwrap(), Some(sample_blob(85, 1)));
    }

    /// With a TTL, entries are readable until it passes, then read as missing.
    async fn ttl_expiry(f) {
        let c = f
            .create(CacheOptions {
                ttl: Some(Duration::from_secs(1)),
                ..Default::default()
            })
            .await;
        let (a, b) = (artifact_id(10), blob_id(10));
        c.put_artifact(&a, &sample_artifact(10)).await.unwrap();
        c.put_blob(&b, &sample_blob(10, 1)).await.unwrap();
        assert!(c.get_blob(&b).await.unwrap().is_some());
        let m = c.missing_blobs(&a, std::slice::from_ref(&b)).await.unwrap();
        assert!(!m.artifact && m.blobs.is_empty());

        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(c.get_blob(&b).await.unwrap(), None);
        assert_eq!(c.get_artifact(&a).await.unwrap(), None);
        let m = c.missing_blobs(&a, std::slice::from_ref(&b)).await.unwrap();
        assert!(m.artifact);
        assert_eq!(m.blobs, vec![b]);
    }

    /// Without a TTL, entries are stored without an expiry and are still there later.
    async fn no_ttl_means_no_expiry(f) {
        let c = fresh(f).await;
        let b = blob_id(11);
        c.put_blob(&b, &sample_blob(11, 1)).await.unwrap();
        let mut seen = Vec::new();
        c.list(None, &mut |m| {
            seen.push(m);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].expires_at, None);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(c.get_blob(&b).await.unwrap().is_some());
    }

    /// `delete_blobs` removes what is stored, ignores what is not, and touches nothing else.
    async fn delete_blobs_ignores_absent_ids(f) {
        let c = fresh(f).await;
        let ids: Vec<BlobId> = (20..25).map(blob_id).collect();
        for (i, id) in ids.iter().enumerate() {
            c.put_blob(id, &sample_blob(i as u64, 1)).await.unwrap();
        }
        c.delete_blobs(&[ids[1].clone(), blob_id(999), ids[3].clone()])
            .await
            .unwrap();
        c.delete_blobs(&[blob_id(998)]).await.unwrap();
        c.delete_blobs(&[]).await.unwrap();
        let m = c.missing_blobs(&artifact_id(20), &ids).await.unwrap();
        assert_eq!(m.blobs, vec![ids[1].clone(), ids[3].clone()]);
    }

    /// `delete` removes artifacts and blobs and counts what existed.
    async fn delete_removes_either_kind(f) {
        let c = fresh(f).await;
        let (a, b) = (artifact_id(30), blob_id(30));
        c.put_artifact(&a, &sample_artifact(30)).await.unwrap();
        c.put_blob(&b, &sample_blob(30, 1)).await.unwrap();
        let n = c
            .delete(&[
                EntryKey::artifact(&a),
                EntryKey::blob(&b),
                EntryKey::blob(&blob_id(31)),
            ])
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(c.get_artifact(&a).await.unwrap(), None);
        assert_eq!(c.get_blob(&b).await.unwrap(), None);
    }

    /// `clear` removes every entry of both kinds, and the cache stays usable.
    async fn clear_empties_the_cache(f) {
        let c = fresh(f).await;
        for n in 0..50 {
            c.put_blob(&blob_id(n), &sample_blob(n, 1)).await.unwrap();
            c.put_artifact(&artifact_id(n), &sample_artifact(n))
                .await
                .unwrap();
        }
        c.clear().await.unwrap();
        let stats = c.stats().await.unwrap();
        assert_eq!((stats.artifacts, stats.blobs, stats.bytes), (0, 0, 0));
        let ids: Vec<BlobId> = (0..50).map(blob_id).collect();
        let m = c.missing_blobs(&artifact_id(0), &ids).await.unwrap();
        assert!(m.artifact);
        assert_eq!(m.blobs.len(), 50);
        c.put_blob(&blob_id(1), &sample_blob(1, 1)).await.unwrap();
        assert!(c.get_blob(&blob_id(1)).await.unwrap().is_some());
        c.clear().await.unwrap();
    }

    /// Many tasks putting and getting at once lose nothing.
    async fn concurrent_tasks_lose_nothing(f) {
        const TASKS: u64 = 16;
        const PER_TASK: u64 = 40;
        let c = fresh(f).await;
        let mut handles = Vec::new();
        for t in 0..TASKS {
            let c = Arc::clone(&c);
            handles.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let n = t * 1000 + i;
                    c.put_blob(&blob_id(n), &sample_blob(n, 2)).await.unwrap();
                    let got = c.get_blob(&blob_id(n)).await.unwrap();
                    assert_eq!(got, Some(sample_blob(n, 2)));
                    // Read another task's entry too, whatever its state.
                    let other = ((t + 1) % TASKS) * 1000 + i;
                    if let Some(doc) = c.get_blob(&blob_id(other)).await.unwrap() {
                        assert_eq!(doc, sample_blob(other, 2));
                    }
                }
            }));
        }
        for h in handles {
            h.await.expect("task panicked");
        }
        let all: Vec<BlobId> = (0..TASKS)
            .flat_map(|t| (0..PER_TASK).map(move |i| blob_id(t * 1000 + i)))
            .collect();
        let m = c.missing_blobs(&artifact_id(0), &all).await.unwrap();
        assert!(m.blobs.is_empty(), "{} entries lost", m.blobs.len());
        assert_eq!(c.stats().await.unwrap().blobs, TASKS * PER_TASK);
    }

    /// `close` can be called twice.
    async fn close_is_idempotent(f) {
        let c = fresh(f).await;
        c.put_blob(&blob_id(40), &sample_blob(40, 1)).await.unwrap();
        c.close().await.unwrap();
        c.close().await.unwrap();
    }

    /// `get_blobs` answers in input order, with `None` for misses.
    async fn get_blobs_keeps_input_order(f) {
        let c = fresh(f).await;
        for n in [1, 3] {
            c.put_blob(&blob_id(n), &sample_blob(n, 1)).await.unwrap();
        }
        let got = c
            .get_blobs(&[blob_id(3), blob_id(2), blob_id(1)])
            .await
            .unwrap();
        assert_eq!(
            got,
            vec![Some(sample_blob(3, 1)), None, Some(sample_blob(1, 1))]
        );
    }

    /// `list` walks entries with their kind and size; `stats` counts them.
    async fn list_and_stats_describe_entries(f) {
        let c = fresh(f).await;
        let (a, b1, b2) = (artifact_id(50), blob_id(50), blob_id(51));
        c.put_artifact(&a, &sample_artifact(50)).await.unwrap();
        c.put_blob(&b1, &sample_blob(50, 2)).await.unwrap();
        c.put_blob(&b2, &sample_blob(51, 4)).await.unwrap();

        let mut all = Vec::new();
        c.list(None, &mut |m| {
            all.push(m);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        all.sort_by(|x, y| x.key.cmp(&y.key));
        let keys: Vec<EntryKey> = all.iter().map(|m| m.key.clone()).collect();
        let mut want = vec![
            EntryKey::artifact(&a),
            EntryKey::blob(&b1),
            EntryKey::blob(&b2),
        ];
        want.sort();
        assert_eq!(keys, want);
        let size_of = |k: &EntryKey| all.iter().find(|m| &m.key == k).unwrap().size;
        assert_eq!(
            size_of(&EntryKey::blob(&b2)),
            codec::encode(&sample_blob(51, 4)).len() as u64
        );

        let mut blobs = 0;
        c.list(Some(EntryKind::Blob), &mut |m| {
            assert_eq!(m.key.kind, EntryKind::Blob);
            blobs += 1;
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(blobs, 2);

        let s = c.stats().await.unwrap();
        assert_eq!((s.artifacts, s.blobs), (1, 2));
        assert_eq!(s.bytes, all.iter().map(|m| m.size).sum::<u64>());

        // A visitor that says stop ends the walk at once, and the walk succeeds.
        let mut visited = 0;
        c.list(None, &mut |_| {
            visited += 1;
            ControlFlow::Break(())
        })
        .await
        .unwrap();
        assert_eq!(visited, 1);
    }

    /// Exporting every entry and importing it into another cache reproduces it exactly.
    async fn export_then_import_reproduces_entries(f) {
        let src = f
            .create(CacheOptions {
                ttl: Some(Duration::from_secs(3600)),
                ..Default::default()
            })
            .await;
        src.put_artifact(&artifact_id(60), &sample_artifact(60))
            .await
            .unwrap();
        for n in 60..70 {
            src.put_blob(&blob_id(n), &sample_blob(n, 3)).await.unwrap();
        }
        src.import(&[raw(
            EntryKey::blob(&blob_id(70)),
            br#"{"SchemaVersion":2,"X":"raw bytes kept"}"#,
        )])
        .await
        .unwrap();
        let mut exported = Vec::new();
        src.export(None, &mut |e| {
            exported.push(e);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(exported.len(), 12);
        let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
        for e in &exported {
            if e.key.id == *blob_id(70).digest() {
                assert_eq!(e.expires_at, None);
            } else {
                let at = e.expires_at.expect("TTL entries export their expiry");
                let off = in_an_hour.duration_since(at).unwrap_or_default();
                assert!(off < Duration::from_secs(120), "expiry off by {off:?}");
            }
        }

        let dst = fresh(f).await;
        dst.import(&exported).await.unwrap();
        let mut again = Vec::new();
        dst.export(None, &mut |e| {
            again.push(e);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        exported.sort_by(|x, y| x.key.cmp(&y.key));
        again.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(exported.len(), again.len());
        for (x, y) in exported.iter().zip(&again) {
            assert_eq!((&x.key, &x.value), (&y.key, &y.value));
            let drift = match (x.expires_at, y.expires_at) {
                (Some(p), Some(q)) => p.duration_since(q).or_else(|_| q.duration_since(p)).ok(),
                (None, None) => Some(Duration::ZERO),
                _ => None,
            };
            assert!(
                drift.is_some_and(|d| d < Duration::from_secs(2)),
                "expiry of {} changed",
                x.key
            );
        }
        assert_eq!(
            dst.get_blob(&blob_id(65)).await.unwrap(),
            Some(sample_blob(65, 3))
        );

        let mut only_artifacts = 0;
        src.export(Some(EntryKind::Artifact), &mut |e| {
            assert_eq!(e.key.kind, EntryKind::Artifact);
            only_artifacts += 1;
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(only_artifacts, 1);
    }

    /// An imported entry whose expiry has passed is a miss and is not exported.
    async fn imported_expired_entries_are_misses(f) {
        let c = fresh(f).await;
        let (old, live) = (blob_id(80), blob_id(81));
        let value = codec::encode(&sample_blob(80, 1));
        c.import(&[
            RawEntry {
                key: EntryKey::blob(&old),
                value: value.clone(),
                expires_at: Some(SystemTime::now() - Duration::from_secs(10)),
            },
            RawEntry {
                key: EntryKey::blob(&live),
                value,
                expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
            },
        ])
        .await
        .unwrap();
        assert_eq!(c.get_blob(&old).await.unwrap(), None);
        assert!(c.get_blob(&live).await.unwrap().is_some());
        let mut exported = Vec::new();
        c.export(None, &mut |e| {
            exported.push(e.key);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        assert_eq!(exported, vec![EntryKey::blob(&live)]);
        let s = c.stats().await.unwrap();
        assert_eq!(s.blobs, 1, "stats counts live entries only");
    }

    /// `gc` with `unused_for` removes the entries the backend knows were not read for
    /// that long, keeps the others, and counts those whose last read it does not know.
    async fn gc_removes_entries_unused_for_the_given_time(f) {
        let c = fresh(f).await;
        let old: Vec<BlobId> = (60..64).map(blob_id).collect();
        for id in &old {
            c.put_blob(id, &sample_blob(60, 1)).await.unwrap();
        }
        // Access stamps may be whole seconds: 2.1 s puts the first entries a full
        // second past the one-second threshold.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let fresh_id = blob_id(64);
        c.put_blob(&fresh_id, &sample_blob(64, 1)).await.unwrap();
        let mut known = 0;
        c.list(None, &mut |m| {
            known += u64::from(m.last_access.is_some());
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        let options = GcOptions {
            unused_for: Some(Duration::from_secs(1)),
        };
        let report = c.gc_with(&options).await.unwrap();
        let mut left = Vec::new();
        c.list(None, &mut |m| {
            left.push(m.key);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        if known == 0 {
            // The backend records no reads: everything is kept, and counted as unknown.
            assert_eq!((report.unused, report.access_unknown), (0, 5), "{report:?}");
            assert_eq!(left.len(), 5);
        } else {
            assert_eq!(known, 5, "a backend knows every entry's last access or none");
            assert_eq!((report.unused, report.access_unknown), (4, 0), "{report:?}");
            assert_eq!(left, [EntryKey::blob(&fresh_id)]);
            assert!(c.get_blob(&old[0]).await.unwrap().is_none());
        }
        // Without `unused_for`, nothing is unused.
        let again = c.gc().await.unwrap();
        assert_eq!((again.unused, again.access_unknown), (0, 0));
    }

    /// `stats` counts live entries unread for 7 and 30 days among those whose last read
    /// the backend knows, and the others as unknown.
    async fn stats_count_unread_entries(f) {
        let c = fresh(f).await;
        c.put_blob(&blob_id(70), &sample_blob(70, 1)).await.unwrap();
        c.put_artifact(&artifact_id(71), &sample_artifact(71))
            .await
            .unwrap();
        let stats = c.stats().await.unwrap();
        assert_eq!(stats.unread, [0, 0], "{stats:?}");
        assert!(stats.access_unknown == 0 || stats.access_unknown == 2, "{stats:?}");
    }

    /// A document over the cache's document size cap is refused by every put and by
    /// `import`, naming it; the other entries of the same call are stored.
    async fn documents_over_the_size_cap_are_refused(f) {
        let doc = codec::encode(&sample_blob(80, 5));
        let c = f
            .create(CacheOptions {
                max_document_size: Some(doc.len() as u64 - 1),
                ..Default::default()
            })
            .await;
        let small = BlobInfo {
            schema_version: BlobInfo::SCHEMA_VERSION,
            ..BlobInfo::default()
        };
        let err = c.put_blob(&blob_id(80), &sample_blob(80, 5)).await.unwrap_err();
        assert!(err.is_document_too_large(), "{err}");
        assert!(err.to_string().contains(blob_id(80).as_str()), "{err}");
        let err = c
            .put_blobs(&[
                (blob_id(81), sample_blob(80, 5)),
                (blob_id(82), small.clone()),
            ])
            .await
            .unwrap_err();
        assert!(err.to_string().contains(blob_id(81).as_str()), "{err}");
        let err = c
            .import(&[
                raw(EntryKey::blob(&blob_id(83)), &doc),
                raw(EntryKey::blob(&blob_id(84)), &codec::encode(&small)),
            ])
            .await
            .unwrap_err();
        assert!(err.to_string().contains(blob_id(83).as_str()), "{err}");
        let stored: Vec<bool> = c
            .get_blobs(&[blob_id(80), blob_id(81), blob_id(82), blob_id(83), blob_id(84)])
            .await
            .unwrap()
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(stored, [false, false, true, false, true]);
    }

    /// `gc` removes expired, stale and undecodable entries and keeps current ones.
    async fn gc_removes_expired_and_stale_entries(f) {
        let c = fresh(f).await;
        let current: Vec<BlobId> = (90..95).map(blob_id).collect();
        for id in &current {
            c.put_blob(id, &sample_blob(90, 2)).await.unwrap();
        }
        c.put_artifact(&artifact_id(90), &sample_artifact(90))
            .await
            .unwrap();
        c.import(&[
            raw(EntryKey::blob(&blob_id(96)), br#"{"SchemaVersion":1}"#),
            raw(EntryKey::blob(&blob_id(97)), b"garbage"),
            raw(
                EntryKey::artifact(&artifact_id(98)),
                br#"{"SchemaVersion":7}"#,
            ),
            // Current version, but a getter could not decode it.
            raw(
                EntryKey::blob(&blob_id(95)),
                br#"{"SchemaVersion":2,"PackageInfos":5}"#,
            ),
            RawEntry {
                key: EntryKey::blob(&blob_id(99)),
                value: codec::encode(&sample_blob(99, 1)),
                expires_at: Some(SystemTime::now() - Duration::from_secs(5)),
            },
        ])
        .await
        .unwrap();
        let report = c.gc().await.unwrap();
        assert_eq!(report.stale, 4, "{report:?}");
        // Backends that drop expired entries by themselves may have nothing left to remove.
        assert!(report.expired <= 1, "{report:?}");
        assert!(report.bytes >= (br#"{"SchemaVersion":1}"#.len() + b"garbage".len()) as u64);

        let mut left = Vec::new();
        c.list(None, &mut |m| {
            left.push(m.key);
            ControlFlow::Continue(())
        })
        .await
        .unwrap();
        left.sort();
        let mut want: Vec<EntryKey> = current.iter().map(EntryKey::blob).collect();
        want.push(EntryKey::artifact(&artifact_id(90)));
        want.sort();
        assert_eq!(left, want);
        let again = c.gc().await.unwrap();
        assert_eq!((again.stale, again.expired), (0, 0));
    }

    /// Claims are per key: a second claim on a live one is busy, other keys are granted,
    /// and a released key can be claimed again.
    async fn claims_are_per_key_and_a_live_claim_is_busy(f) {
        let c = fresh(f).await;
        let lease = Duration::from_secs(30);
        let first = c.claim(&[blob_id(1), blob_id(2)], lease).await.unwrap();
        assert!(first.iter().all(|c| matches!(c, Claimed::Owned(_))), "{first:?}");
        let second = c.claim(&[blob_id(2), blob_id(3)], lease).await.unwrap();
        assert_eq!(second[0], Claimed::Busy);
        assert!(matches!(&second[1], Claimed::Owned(claim) if claim.id() == &blob_id(3)));
        let held: Vec<Claim> = first.into_iter().filter_map(Claimed::owned).collect();
        c.release(&held).await.unwrap();
        assert!(!busy(&*c, 2).await, "a released key stays claimed");
        assert!(busy(&*c, 3).await);
        assert!(c.await_release(&blob_id(4), Duration::from_secs(5)).await.unwrap());
    }

    /// A waiter wakes up promptly when the owner stores the result and releases, and
    /// then uses the result.
    async fn a_waiter_wakes_when_the_owner_stores_and_releases(f) {
        let c = fresh(f).await;
        let claim = owned(&*c, 1, Duration::from_secs(30)).await;
        let wait = waiter(&c, 1, ClaimOptions::with_lease(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!wait.is_finished(), "the waiter did not wait");
        c.put_blob(&blob_id(1), &sample_blob(1, 2)).await.unwrap();
        let released = Instant::now();
        c.release(&[claim]).await.unwrap();
        let (waited, at) = wait.await.unwrap();
        assert_eq!(waited, Waited::Stored);
        let late = at.saturating_duration_since(released);
        assert!(late < Duration::from_millis(700), "woke {late:?} after the release");
        assert!(!busy(&*c, 1).await);
    }

    /// An owner that gives up (releases without a result) hands the key to a waiter at
    /// once: the waiter takes the claim over and owns it.
    async fn a_claim_released_without_a_result_is_taken_over(f) {
        let c = fresh(f).await;
        let claim = owned(&*c, 1, Duration::from_secs(30)).await;
        let wait = waiter(&c, 1, ClaimOptions::with_lease(Duration::from_secs(30)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let released = Instant::now();
        c.release(&[claim]).await.unwrap();
        let (waited, at) = wait.await.unwrap();
        let Waited::TakenOver(taken) = waited else {
            panic!("not taken over: {waited:?}");
        };
        assert_eq!(taken.id(), &blob_id(1));
        assert!(at.saturating_duration_since(released) < Duration::from_millis(700));
        assert!(busy(&*c, 1).await, "the taker does not own the key");
        c.release(&[taken]).await.unwrap();
        assert!(!busy(&*c, 1).await);
    }

    /// A claim nobody renews runs out after its lease and a waiter takes it over; a
    /// renewed claim stays live past its first lease.
    async fn an_unrenewed_claim_runs_out_and_a_renewed_one_stays(f) {
        let c = fresh(f).await;
        let lease = Duration::from_millis(400);
        let _forgotten = owned(&*c, 1, lease).await;
        let started = Instant::now();
        let (waited, at) = waiter(&c, 1, ClaimOptions::with_lease(Duration::from_secs(10)))
            .await
            .unwrap();
        assert!(matches!(waited, Waited::TakenOver(_)), "{waited:?}");
        let after = at - started;
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(3),
            "taken over after {after:?} with a lease of {lease:?}"
        );

        let kept = owned(&*c, 2, lease).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            c.renew(std::slice::from_ref(&kept), lease).await.unwrap();
        }
        assert!(busy(&*c, 2).await, "a renewed claim ran out");
    }

    /// Renewing or releasing a claim that ran out and was taken over leaves the new
    /// owner's claim alone.
    async fn a_lost_claim_cannot_end_the_new_owners(f) {
        let c = fresh(f).await;
        let old = owned(&*c, 1, Duration::from_millis(200)).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let new = owned(&*c, 1, Duration::from_secs(30)).await;
        assert_ne!(old.token(), new.token());
        c.renew(std::slice::from_ref(&old), Duration::from_secs(30)).await.unwrap();
        c.release(&[old]).await.unwrap();
        assert!(busy(&*c, 1).await, "the old owner ended the new owner's claim");
        c.release(&[new]).await.unwrap();
        assert!(!busy(&*c, 1).await);
    }

    /// A waiter never waits past its bound: with the claim still live it times out and
    /// analyses itself.
    async fn a_wait_past_its_bound_times_out(f) {
        let c = fresh(f).await;
        let _held = owned(&*c, 1, Duration::from_secs(60)).await;
        let options = ClaimOptions {
            lease: Duration::from_secs(60),
            max_wait: Duration::from_millis(300),
        };
        let started = Instant::now();
        let (waited, at) = waiter(&c, 1, options).await.unwrap();
        assert_eq!(waited, Waited::TimedOut);
        let took = at - started;
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(2), "{took:?}");
    }
}
