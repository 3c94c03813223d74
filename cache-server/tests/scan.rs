//! The `Scan` RPC against the reference's own answer: the documents the reference server
//! stored for an image (`data/reference-*.json`), the scan request its v0.76 client sent
//! (`data/client-scan.pb`) and the reference server's response (`data/reference-scan-
//! response.pb`), all captured from one run. The answers must agree on everything but
//! the package UIDs (the reference's own package hash; scancache's is its own): PURLs
//! included.

use std::sync::Arc;

use cache_core::{ArtifactInfo, BlobId, BlobInfo, Cache, CacheOptions};
use cache_server::proto::scanner::{ScanRequest, ScanResponse};
use prost::Message;
use serde_json::Value;

use crate::protocol::Served;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The response's JSON form without package UIDs (and empty sub-messages as absent
/// ones, see `canonical`); every package has a PURL.
fn comparable(resp: &ScanResponse) -> Value {
    let mut resp = resp.clone();
    for result in &mut resp.results {
        for p in &mut result.packages {
            let id = p.identifier.as_mut().expect("a package without identifier");
            assert!(id.purl.starts_with("pkg:"), "{}: no PURL", p.name);
            id.uid.clear();
        }
    }
    crate::canonical(&resp)
}

/// A memory cache holding the reference's documents under the request's IDs.
fn reference_cache(req: &ScanRequest) -> Arc<dyn Cache> {
    let cache = cache_mem::MemCache::new(&CacheOptions::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let os: BlobInfo = serde_json::from_slice(&data("reference-blob-os.json")).unwrap();
        let lang: BlobInfo = serde_json::from_slice(&data("reference-blob-lang.json")).unwrap();
        let ids: Vec<BlobId> = req.blob_ids.iter().map(|s| s.parse().unwrap()).collect();
        cache.put_blob(&ids[0], &os).await.unwrap();
        cache.put_blob(&ids[1], &lang).await.unwrap();
        let artifact: ArtifactInfo =
            serde_json::from_slice(&data("reference-artifact.json")).unwrap();
        cache
            .put_artifact(&req.artifact_id.parse().unwrap(), &artifact)
            .await
            .unwrap();
    });
    Arc::new(cache)
}

#[test]
fn the_answer_is_the_reference_servers_purls_included() {
    let req = ScanRequest::decode(&data("client-scan.pb")[..]).unwrap();
    let want = ScanResponse::decode(&data("reference-scan-response.pb")[..]).unwrap();
    let s = Served::start(reference_cache(&req), Default::default());
    let resp = s.scan_pb(&req);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = ScanResponse::decode(&resp.body[..]).unwrap();
    let (got, want) = (comparable(&got), comparable(&want));
    if got != want {
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap();
        let (g, w) = (pretty(&got), pretty(&want));
        let first = g
            .lines()
            .zip(w.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let context = |s: &str| {
            s.lines()
                .skip(first.saturating_sub(8))
                .take(16)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "answers differ at line {first}:\n--- ours\n{}\n--- reference\n{}",
            context(&g),
            context(&w)
        );
    }
}

/// A directory's or an SBOM's scan: one blob, stored under the key that is also the
/// artifact ID, and no artifact entry (the reference's client writes none for them). The
/// answer is the blob's packages, as the reference's server gives them without the entry.
#[test]
fn a_scan_without_an_artifact_entry_answers_from_its_blob() {
    let req = ScanRequest::decode(&data("client-scan.pb")[..]).unwrap();
    let lang: BlobInfo = serde_json::from_slice(&data("reference-blob-lang.json")).unwrap();
    let key: BlobId = req.blob_ids[1].parse().unwrap();
    let absent = req.blob_ids[0].clone();
    let cache = cache_mem::MemCache::new(&CacheOptions::default());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(cache.put_blob(&key, &lang))
        .unwrap();
    let s = Served::start(Arc::new(cache), Default::default());
    let dir = ScanRequest {
        target: "project".into(),
        artifact_id: key.to_string(),
        blob_ids: vec![key.to_string()],
        ..req
    };
    let resp = s.scan_pb(&dir);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let got = ScanResponse::decode(&resp.body[..]).unwrap();
    let packages: usize = got
        .results
        .iter()
        .filter(|r| r.class == "lang-pkgs")
        .map(|r| r.packages.len())
        .sum();
    let stored: usize = lang.applications.iter().map(|a| a.packages.len()).sum();
    assert!(stored > 0);
    assert_eq!(packages, stored, "{got:?}");
    // A blob that is missing is still an error, named.
    let missing = ScanRequest {
        blob_ids: vec![absent],
        ..dir
    };
    let resp = s.scan_pb(&missing);
    assert_eq!(resp.status, 404, "{}", resp.text());
    assert!(
        resp.text().contains("layer cache missing"),
        "{}",
        resp.text()
    );
}
