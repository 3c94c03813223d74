//! The committed samples: regenerating them reproduces the files byte for byte, and
//! each scans to what its README says.

use std::path::PathBuf;

use cache_fixtures::SAMPLE_FILES;
use cache_scan::ScanOptions;

use crate::util::{mem, packages, scan_ok};

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

#[test]
fn regenerating_reproduces_the_committed_samples() {
    // `CACHE_SCAN_UPDATE_SAMPLES=1 cargo test -p cache-scan samples` rewrites them, like
    // `cargo xtask gen-samples`.
    if std::env::var_os("CACHE_SCAN_UPDATE_SAMPLES").is_some() {
        cache_fixtures::write_samples(&samples_dir()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let written = cache_fixtures::write_samples(dir.path()).unwrap();
    assert_eq!(written.len(), SAMPLE_FILES.len());
    let mut total = 0;
    for name in SAMPLE_FILES {
        let fresh = std::fs::read(dir.path().join(name)).unwrap();
        let committed = std::fs::read(samples_dir().join(name)).unwrap_or_else(|e| {
            panic!("samples/{name} is missing ({e}); run `cargo xtask gen-samples`")
        });
        assert!(
            fresh == committed,
            "samples/{name} differs from what the generator writes; run `cargo xtask gen-samples` and commit"
        );
        total += committed.len();
    }
    assert!(
        total < 1 << 20,
        "samples take {total} bytes, more than 1 MiB"
    );
    // A second generation is identical too (no time stamps or random order).
    let again = tempfile::tempdir().unwrap();
    cache_fixtures::write_samples(again.path()).unwrap();
    for name in SAMPLE_FILES {
        assert_eq!(
            std::fs::read(dir.path().join(name)).unwrap(),
            std::fs::read(again.path().join(name)).unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn samples_scan_as_documented() {
    let cache = mem();
    let debian = scan_ok(
        &samples_dir().join("debian.tar"),
        &cache,
        &ScanOptions::default(),
    )
    .await;
    let os = debian.os.as_ref().unwrap();
    assert_eq!((os.family.as_str(), os.name.as_str()), ("debian", "12.11"));
    assert_eq!(debian.repo_tags, ["sample/debian:12"]);
    let pkgs = packages(&debian);
    assert_eq!(pkgs.len(), 26, "{pkgs:#?}");
    assert!(
        pkgs.contains(&"bash@5.2.15-2+b8<-0".to_string()),
        "{pkgs:#?}"
    );
    assert!(
        pkgs.contains(&"curl@7.88.1-10+deb12u12<-1".to_string()),
        "{pkgs:#?}"
    );
    assert!(
        pkgs.contains(&"passwd@1:4.13+dfsg1-1+b1<-0".to_string()),
        "{pkgs:#?}"
    );

    let alpine = scan_ok(
        &samples_dir().join("alpine.tar"),
        &cache,
        &ScanOptions::default(),
    )
    .await;
    let os = alpine.os.as_ref().unwrap();
    assert_eq!((os.family.as_str(), os.name.as_str()), ("alpine", "3.20.3"));
    assert_eq!(alpine.repository.as_ref().unwrap().release, "3.20");
    assert_eq!(alpine.packages.len(), 23);
    assert_eq!(
        (alpine.layers.analysed, alpine.layers.cached),
        (2, 0),
        "alpine shares nothing with debian"
    );
    let curl = alpine
        .packages
        .iter()
        .find(|p| p.package.name == "curl")
        .unwrap();
    assert_eq!(
        curl.package.depends_on,
        [
            "ca-certificates-bundle@20240705-r0",
            "libcurl@8.12.1-r0",
            "musl@1.2.5-r0",
            "zlib@1.3.1-r1"
        ]
    );
    assert_eq!(curl.layer_diff_id, alpine.diff_ids[1]);
    assert!(curl.package.digest.starts_with("sha1:"));

    let pair = samples_dir().join("pair.tar");
    let a = scan_ok(&pair, &cache, &ScanOptions::default()).await;
    assert_eq!(a.repo_tags, ["sample/app-a:1.0"]);
    let os = a.os.as_ref().unwrap();
    assert_eq!((os.family.as_str(), os.name.as_str()), ("ubuntu", "22.04"));
    assert_eq!((a.layers.analysed, a.layers.cached), (2, 0));
    let options = ScanOptions {
        image: Some("sample/app-b:1.0".into()),
        ..ScanOptions::default()
    };
    let b = scan_ok(&pair, &cache, &options).await;
    assert_eq!(
        (b.layers.analysed, b.layers.cached),
        (1, 1),
        "app-b reuses the shared base layer"
    );
    assert_eq!(a.diff_ids[0], b.diff_ids[0]);
    assert!(b.packages.iter().any(|p| p.package.name == "openssl"));
    assert!(
        !b.packages
            .iter()
            .any(|p| p.package.name == "python3.10-minimal")
    );

    let again = scan_ok(
        &samples_dir().join("debian.tar"),
        &cache,
        &ScanOptions::default(),
    )
    .await;
    assert_eq!((again.layers.analysed, again.layers.cached), (0, 2));
}
