//! Reading SBOMs back: a CycloneDX (JSON, spec 1.2–1.7) or SPDX (JSON, 2.2 or 2.3)
//! document → the OS, OS packages and applications of a [`BlobInfo`], and
//! [`scan_sbom()`], which caches that result by the document's digest and applies it
//! into a [`Report`].
//!
//! Packages are grouped as their document groups them: under the OS component or
//! package, or under an application (by the reference's `aquasecurity:trivy:Type`
//! property or annotation, and dependency or `CONTAINS` edges). A library reached from
//! neither is placed by its PURL type: `deb`, `apk` and `rpm` are OS packages, other
//! types go to one application per type without a file path. Versions of OS packages
//! are split back into epoch, version and release.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use cache_core::{
    Application, ArtifactId, BlobId, BlobInfo, Cache, Os, Package, PackageInfo, PkgIdentifier,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{
    ArtifactType, LayerCounts, Report,
    apply::{LayerView, apply},
    error::{Result, ScanError},
    upload::{TargetSource, UploadedTarget},
};

/// Largest SBOM read.
pub const MAX_SBOM: u64 = 256 << 20;

const NS: &str = "aquasecurity:trivy:";

/// The analyser that reads SBOMs, with its version (part of its keys).
pub const SBOM_ANALYSERS: [(&str, u32); 1] = [("sbom", 1)];

/// What one SBOM holds, in the form the cache stores.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadSbom {
    /// `Cyclonedx` or `Spdx`.
    pub format: ArtifactType,
    /// The OS, packages and applications.
    pub blob: BlobInfo,
}

/// Reads an SBOM document. The error is one line: not JSON, neither format, or an
/// unsupported spec version.
pub fn read(bytes: &[u8]) -> std::result::Result<ReadSbom, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if !doc.is_object() {
        return Err("not a JSON object".into());
    }
    if let Some(format) = doc.get("bomFormat") {
        if format != "CycloneDX" {
            return Err(format!("unknown bomFormat {format}"));
        }
        let version = doc["specVersion"].as_str().unwrap_or_default();
        if !matches!(version, "1.2" | "1.3" | "1.4" | "1.5" | "1.6" | "1.7") {
            return Err(format!(
                "unsupported CycloneDX spec version {:?} (supported: 1.2 to 1.7)",
                version
            ));
        }
        return Ok(ReadSbom {
            format: ArtifactType::Cyclonedx,
            blob: cyclonedx(&doc),
        });
    }
    if let Some(version) = doc.get("spdxVersion") {
        let version = version.as_str().unwrap_or_default();
        if !matches!(version, "SPDX-2.2" | "SPDX-2.3") {
            return Err(format!(
                "unsupported SPDX version {version:?} (supported: SPDX-2.2, SPDX-2.3)"
            ));
        }
        return Ok(ReadSbom {
            format: ArtifactType::Spdx,
            blob: spdx(&doc),
        });
    }
    Err("neither a CycloneDX document (bomFormat) nor an SPDX document (spdxVersion)".into())
}

/// The bytes of the SBOM at `path` (a regular file within [`MAX_SBOM`]) and its key:
/// [`cache_core::calc_key`] of the document's SHA-256 and [`SBOM_ANALYSERS`].
async fn read_file(path: &Path) -> Result<(Vec<u8>, BlobId)> {
    let owned = path.to_path_buf();
    let bytes = crate::run::blocking(move || {
        let meta =
            std::fs::metadata(&owned).map_err(|e| ScanError::io("open", owned.clone(), e))?;
        if !meta.is_file() {
            return Err(ScanError::Sbom {
                path: owned,
                reason: "not a regular file".into(),
            });
        }
        if meta.len() > MAX_SBOM {
            return Err(ScanError::Sbom {
                path: owned,
                reason: format!("{} bytes is over the {MAX_SBOM}-byte limit", meta.len()),
            });
        }
        std::fs::read(&owned).map_err(|e| ScanError::io("read", owned.clone(), e))
    })
    .await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    let key = BlobId::from(cache_core::calc_key(
        &digest,
        SBOM_ANALYSERS.iter().copied(),
        std::iter::empty::<(&str, &str)>(),
    )?);
    Ok((bytes, key))
}

/// Stores the reading of the SBOM at `path` in `server` the way the reference client
/// fills a server, without reading anything back (the server builds the report): the
/// document is read and checked (a bad one fails before the server is asked anything),
/// then one `missing_blobs`, and `put_blob` only when the server lacks the result. The
/// key is [`scan_sbom`]'s; no artifact entry is written ([`UploadedTarget`]). No local
/// cache is involved: the document is read whole to find its key anyway, and reading it
/// back costs no more than decoding a cached result.
///
/// Must be called within a Tokio runtime.
pub async fn upload_sbom(path: &Path, server: &dyn Cache) -> Result<UploadedTarget> {
    let (bytes, key) = read_file(path).await?;
    let read = read(&bytes).map_err(|reason| ScanError::Sbom {
        path: path.to_path_buf(),
        reason,
    })?;
    let artifact = ArtifactId::from(key.digest().clone());
    let missing = server
        .missing_blobs(&artifact, std::slice::from_ref(&key))
        .await?;
    let source = if missing.blobs.is_empty() {
        TargetSource::OnServer
    } else {
        server.put_blob(&key, &read.blob).await?;
        TargetSource::Analysed
    };
    tracing::info!(
        path = %path.display(),
        on_server = source == TargetSource::OnServer,
        "uploaded SBOM"
    );
    Ok(UploadedTarget {
        key,
        artifact_type: read.format,
        source,
    })
}

/// Reads the SBOM at `path` through `cache` (the key: [`cache_core::calc_key`] of the
/// document's SHA-256 and [`SBOM_ANALYSERS`]) and returns its report.
pub async fn scan_sbom(path: &Path, cache: &dyn Cache) -> Result<Report> {
    let (bytes, key) = read_file(path).await?;
    let mut counts = LayerCounts {
        total: 1,
        ..LayerCounts::default()
    };
    // The format is judged again on a hit: it is cheap, and the cached blob is the
    // reading of these very bytes.
    let read = read(&bytes).map_err(|reason| ScanError::Sbom {
        path: path.to_path_buf(),
        reason,
    })?;
    let blob = match cache.get_blob(&key).await? {
        Some(blob) if blob.is_current() => {
            counts.cached = 1;
            blob
        }
        _ => {
            cache.put_blob(&key, &read.blob).await?;
            counts.analysed = 1;
            read.blob
        }
    };
    let applied = apply(&[LayerView {
        diff_id: "",
        digest: None,
        blob: &blob,
    }]);
    Ok(Report {
        artifact_name: path.display().to_string(),
        artifact_type: read.format,
        image_id: String::new(),
        repo_tags: Vec::new(),
        diff_ids: Vec::new(),
        architecture: String::new(),
        os: applied.reported_os(),
        repository: applied.repository,
        packages: applied.packages,
        applications: applied.applications,
        layers: counts,
        layer_sources: Vec::new(),
    })
}

/// A package found in a document, before it is placed.
struct Found {
    package: Package,
    /// The reference scanner's `PkgType`, if given.
    kind: String,
    purl_type: String,
}

/// Where a group of packages goes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Os,
    App { app_type: String, file_path: String },
}

/// The reference's names of the types it reports together, by type.
fn aggregated_label(app_type: &str) -> Option<&'static str> {
    Some(match app_type {
        "python-pkg" => "Python",
        "node-pkg" => "Node.js",
        "gemspec" => "Ruby",
        "conda-pkg" => "Conda",
        "jar" => "Java",
        _ => return None,
    })
}

fn app_group(app_type: &str, name: &str) -> Group {
    let file_path = if aggregated_label(app_type) == Some(name) {
        ""
    } else {
        name
    };
    Group::App {
        app_type: app_type.to_owned(),
        file_path: file_path.to_owned(),
    }
}

/// The language type a PURL type stands for when a document names no type.
fn lang_type_of_purl(purl_type: &str) -> &str {
    match purl_type {
        "npm" => "node-pkg",
        "pypi" => "python-pkg",
        "gem" => "gemspec",
        "maven" => "jar",
        "golang" => "gobinary",
        "cargo" => "rustbinary",
        "composer" => "composer-vendor",
        "nuget" => "nuget",
        "conda" => "conda-pkg",
        other => other,
    }
}

fn purl_type(purl: &str) -> String {
    purl.strip_prefix("pkg:")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default()
        .to_owned()
}

/// `(epoch, version, release)` of a full OS package version.
fn split_os_version(full: &str, purl_type: &str) -> (i64, String, String) {
    let (epoch, rest) = match full.split_once(':') {
        Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) && !e.is_empty() => {
            (e.parse().unwrap_or(0), r)
        }
        _ => (0, full),
    };
    // As the reference reads one back, only an RPM version is split into version and
    // release; a Debian or Alpine version stays whole.
    if purl_type != "rpm" {
        return (epoch, rest.to_owned(), String::new());
    }
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v.to_owned(), r.to_owned()),
        None => (epoch, rest.to_owned(), String::new()),
    }
}

/// The package of one component or SPDX package: `props` are its reference-scanner
/// properties (`PkgID`, `PkgType`, `FilePath`, `SrcName`, …).
fn found(
    name: &str,
    version: &str,
    purl: &str,
    licenses: Vec<String>,
    props: &HashMap<String, String>,
) -> Found {
    let purl_type = purl_type(purl);
    let prop = |k: &str| props.get(k).cloned().unwrap_or_default();
    let mut p = Package {
        name: name.to_owned(),
        licenses,
        file_path: prop("FilePath"),
        src_name: prop("SrcName"),
        src_version: prop("SrcVersion"),
        src_release: prop("SrcRelease"),
        src_epoch: prop("SrcEpoch").parse().unwrap_or(0),
        ..Package::default()
    };
    if matches!(purl_type.as_str(), "deb" | "rpm" | "apk") {
        (p.epoch, p.version, p.release) = split_os_version(version, &purl_type);
    } else {
        p.version = version.to_owned();
    }
    p.id = props
        .get("PkgID")
        .cloned()
        .unwrap_or_else(|| format!("{name}@{version}"));
    if !purl.is_empty() {
        p.identifier = Some(PkgIdentifier {
            purl: purl.to_owned(),
            ..PkgIdentifier::default()
        });
    }
    Found {
        package: p,
        kind: prop("PkgType"),
        purl_type,
    }
}

/// Places every package and builds the blob.
fn assemble(
    os: Option<Os>,
    packages: Vec<(String, Found)>,
    owner: &HashMap<String, Group>,
    depends: &HashMap<String, Vec<String>>,
) -> BlobInfo {
    let ids: HashMap<String, String> = packages
        .iter()
        .map(|(r, f)| (r.clone(), f.package.id.clone()))
        .collect();
    let mut groups: BTreeMap<Group, Vec<Package>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (reference, mut f) in packages.into_iter() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let mut on: Vec<String> = depends
            .get(&reference)
            .into_iter()
            .flatten()
            .filter_map(|d| ids.get(d.as_str()).cloned())
            .collect();
        on.sort();
        on.dedup();
        f.package.depends_on = on;
        let group = owner.get(&reference).cloned().unwrap_or_else(|| {
            if matches!(f.purl_type.as_str(), "deb" | "rpm" | "apk") {
                Group::Os
            } else if !f.kind.is_empty() {
                app_group(&f.kind, "")
            } else {
                app_group(lang_type_of_purl(&f.purl_type), "")
            }
        });
        groups.entry(group).or_default().push(f.package);
    }
    let mut blob = BlobInfo {
        schema_version: BlobInfo::SCHEMA_VERSION,
        os,
        ..BlobInfo::default()
    };
    for (group, mut pkgs) in groups {
        pkgs.sort_by(|a, b| (&a.name, &a.version, &a.id).cmp(&(&b.name, &b.version, &b.id)));
        match group {
            Group::Os => blob.package_infos.push(PackageInfo {
                packages: pkgs,
                ..PackageInfo::default()
            }),
            Group::App {
                app_type,
                file_path,
            } => blob.applications.push(Application {
                app_type,
                file_path,
                packages: pkgs,
                ..Application::default()
            }),
        }
    }
    blob
}

fn cyclonedx(doc: &Value) -> BlobInfo {
    // Components, nested ones included (at most 32 levels).
    let mut all = Vec::new();
    let mut stack: Vec<(&Value, usize)> = doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (c, 0))
        .collect();
    while let Some((c, depth)) = stack.pop() {
        all.push(c);
        if depth < 32 {
            stack.extend(
                c["components"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| (n, depth + 1)),
            );
        }
    }
    let depends: HashMap<String, Vec<String>> = doc["dependencies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            let r = d["ref"].as_str()?.to_owned();
            let on = d["dependsOn"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect();
            Some((r, on))
        })
        .collect();
    let props_of = |c: &Value| -> HashMap<String, String> {
        c["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let name = p["name"].as_str()?.strip_prefix(NS)?;
                Some((
                    name.to_owned(),
                    p["value"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect()
    };
    let mut os = None;
    let mut owner: HashMap<String, Group> = HashMap::new();
    let mut packages = Vec::new();
    for c in all {
        let reference = c["bom-ref"].as_str().unwrap_or_default().to_owned();
        let name = c["name"].as_str().unwrap_or_default();
        let version = c["version"].as_str().unwrap_or_default();
        let props = props_of(c);
        match c["type"].as_str().unwrap_or_default() {
            "operating-system" => {
                os = Some(Os {
                    family: name.to_owned(),
                    name: version.to_owned(),
                    ..Os::default()
                });
                for d in depends.get(&reference).into_iter().flatten() {
                    owner.insert(d.clone(), Group::Os);
                }
            }
            "application" if props.contains_key("Type") => {
                let group = app_group(props.get("Type").map_or("", String::as_str), name);
                for d in depends.get(&reference).into_iter().flatten() {
                    owner.insert(d.clone(), group.clone());
                }
            }
            "library" | "framework" | "application"
                if !version.is_empty() || c.get("purl").is_some() =>
            {
                let licenses = c["licenses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|l| {
                        l["license"]["id"]
                            .as_str()
                            .or_else(|| l["license"]["name"].as_str())
                            .or_else(|| l["expression"].as_str())
                            .map(str::to_owned)
                    })
                    .collect();
                let purl = c["purl"].as_str().unwrap_or_default();
                let key = if reference.is_empty() {
                    format!("{name}@{version}")
                } else {
                    reference
                };
                packages.push((key, found(name, version, purl, licenses, &props)));
            }
            _ => {}
        }
    }
    assemble(os, packages, &owner, &depends)
}

fn spdx(doc: &Value) -> BlobInfo {
    let mut contains: HashMap<String, Vec<String>> = HashMap::new();
    let mut depends: HashMap<String, Vec<String>> = HashMap::new();
    for r in doc["relationships"].as_array().into_iter().flatten() {
        let (Some(a), Some(b)) = (
            r["spdxElementId"].as_str(),
            r["relatedSpdxElement"].as_str(),
        ) else {
            continue;
        };
        match r["relationshipType"].as_str().unwrap_or_default() {
            "CONTAINS" => contains.entry(a.to_owned()).or_default().push(b.to_owned()),
            "DEPENDS_ON" => depends.entry(a.to_owned()).or_default().push(b.to_owned()),
            _ => {}
        }
    }
    let props_of = |p: &Value| -> HashMap<String, String> {
        p["annotations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                let (k, v) = a["comment"].as_str()?.split_once(": ")?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect()
    };
    let mut os = None;
    let mut owner: HashMap<String, Group> = HashMap::new();
    let mut packages = Vec::new();
    for p in doc["packages"].as_array().into_iter().flatten() {
        let id = p["SPDXID"].as_str().unwrap_or_default().to_owned();
        let name = p["name"].as_str().unwrap_or_default();
        let version = p["versionInfo"].as_str().unwrap_or_default();
        let props = props_of(p);
        let purl = p["externalRefs"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["referenceType"] == "purl")
            .and_then(|r| r["referenceLocator"].as_str())
            .unwrap_or_default();
        let purpose = p["primaryPackagePurpose"].as_str().unwrap_or_default();
        match purpose {
            "OPERATING-SYSTEM" | "OPERATING_SYSTEM" => {
                os = Some(Os {
                    family: name.to_owned(),
                    name: version.to_owned(),
                    ..Os::default()
                });
                for d in contains.get(&id).into_iter().flatten() {
                    owner.insert(d.clone(), Group::Os);
                }
            }
            "APPLICATION" if props.contains_key("Type") && purl.is_empty() => {
                let group = app_group(props.get("Type").map_or("", String::as_str), name);
                for d in contains.get(&id).into_iter().flatten() {
                    owner.insert(d.clone(), group.clone());
                }
            }
            _ if !purl.is_empty() || (!version.is_empty() && purpose == "LIBRARY") => {
                let licenses = match p["licenseDeclared"].as_str() {
                    Some("NONE" | "NOASSERTION") | None => Vec::new(),
                    Some(l) => l.split(" AND ").map(str::to_owned).collect(),
                };
                packages.push((id, found(name, version, purl, licenses, &props)));
            }
            _ => {}
        }
    }
    assemble(os, packages, &owner, &depends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_documents_are_one_line_errors() {
        for (doc, want) in [
            (&b"not json"[..], "not JSON"),
            (b"[1]", "not a JSON object"),
            (
                br#"{"bomFormat":"CycloneDX","specVersion":"1.1"}"#,
                "unsupported CycloneDX spec version \"1.1\"",
            ),
            (br#"{"spdxVersion":"SPDX-3.0"}"#, "unsupported SPDX version"),
            (br#"{"a":1}"#, "neither a CycloneDX"),
        ] {
            let e = read(doc).unwrap_err();
            assert!(e.starts_with(want), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn orphan_libraries_are_placed_by_purl() {
        let doc = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[
            {"type":"library","name":"curl","version":"1:7.88.1-10","purl":"pkg:deb/debian/curl@7.88.1-10?epoch=1"},
            {"type":"library","name":"left-pad","version":"1.3.0","purl":"pkg:npm/left-pad@1.3.0"}]}"#;
        let blob = read(doc).unwrap().blob;
        let deb = &blob.package_infos[0].packages[0];
        assert_eq!(
            (deb.epoch, deb.version.as_str(), deb.release.as_str()),
            (1, "7.88.1-10", "")
        );
        assert_eq!(blob.applications[0].app_type, "node-pkg");
    }
}
