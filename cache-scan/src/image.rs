//! Reading an image's manifest and config: docker-save `manifest.json` (classic and
//! Docker ≥ 25) and OCI `index.json` layouts.

use std::collections::{HashMap, HashSet};

use cache_core::Digest;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::{
    archive::Archive,
    error::{Result, ScanError},
    tarfmt::clean_path,
};

/// Media types of nested indexes.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Nested indexes followed at most.
const MAX_INDEX_DEPTH: usize = 4;
/// Most descriptors read from `index.json` and the indexes it nests, together (each
/// nested index is read once however often it is listed).
const MAX_DESCRIPTORS: usize = 1000;

/// One layer as the manifest and config describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LayerRef {
    /// The layer file's cleaned name inside the archive.
    pub(crate) name: String,
    /// The media type the manifest gives, if any.
    pub(crate) media_type: Option<String>,
    /// The digest of the stored (possibly compressed) bytes, when the format names one.
    pub(crate) blob_digest: Option<Digest>,
    /// The stored size the manifest gives, if any.
    pub(crate) size: Option<u64>,
    /// The digest of the uncompressed layer, from the config.
    pub(crate) diff_id: Digest,
    /// The history entry that created it.
    pub(crate) created_by: String,
}

/// An image read from an archive.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    /// Tags the archive gives the image.
    pub(crate) repo_tags: Vec<String>,
    /// `sha256` of the config.
    pub(crate) image_id: Digest,
    /// The parts of the config the artifact record keeps.
    pub(crate) architecture: String,
    pub(crate) os: String,
    pub(crate) created: String,
    pub(crate) docker_version: String,
    /// Layers, bottom first.
    pub(crate) layers: Vec<LayerRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct OciManifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    docker_version: Option<String>,
    rootfs: Option<RootFs>,
    #[serde(default)]
    history: Option<Vec<History>>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct History {
    #[serde(default)]
    created_by: Option<String>,
    #[serde(default)]
    empty_layer: Option<bool>,
}

/// A manifest chosen from the archive, before its config is read.
struct Chosen {
    repo_tags: Vec<String>,
    config_name: String,
    config_digest: Option<Digest>,
    layers: Vec<ChosenLayer>,
}

/// A layer as a manifest lists it.
struct ChosenLayer {
    name: String,
    media_type: Option<String>,
    blob_digest: Option<Digest>,
    size: Option<u64>,
}

/// Reads the image `reference` picks (the first one when `None`).
pub(crate) fn read_image(archive: &Archive, reference: Option<&str>) -> Result<Image> {
    let chosen = choose(archive, reference)?;
    let config_bytes = archive.read_metadata(&chosen.config_name, "config")?;
    let image_id = sha256(&config_bytes);
    if let Some(expected) = &chosen.config_digest
        && *expected != image_id
    {
        return Err(ScanError::DigestMismatch {
            what: "config",
            name: chosen.config_name,
            expected: expected.to_string(),
            actual: image_id.to_string(),
        });
    }
    let bad_config = |reason: String| ScanError::InvalidMetadata {
        path: archive.path().into(),
        what: "config",
        name: chosen.config_name.clone(),
        reason,
    };
    let config: Config =
        serde_json::from_slice(&config_bytes).map_err(|e| bad_config(e.to_string()))?;
    let diff_ids = config
        .rootfs
        .and_then(|r| r.diff_ids)
        .ok_or_else(|| bad_config("no rootfs.diff_ids".into()))?;
    if diff_ids.len() != chosen.layers.len() {
        return Err(ScanError::DiffIdCount {
            image: image_id.to_string(),
            layers: chosen.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let mut created_by = config
        .history
        .unwrap_or_default()
        .into_iter()
        .filter(|h| !h.empty_layer.unwrap_or(false))
        .map(|h| h.created_by.unwrap_or_default());
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (layer, diff_id) in chosen.layers.into_iter().zip(diff_ids) {
        let diff_id = Digest::parse(&diff_id)
            .map_err(|e| bad_config(format!("diffID {diff_id:?} is not a sha256 digest: {e}")))?;
        layers.push(LayerRef {
            name: layer.name,
            media_type: layer.media_type,
            blob_digest: layer.blob_digest,
            size: layer.size,
            diff_id,
            created_by: created_by.next().unwrap_or_default(),
        });
    }
    Ok(Image {
        repo_tags: chosen.repo_tags,
        image_id,
        architecture: config.architecture.unwrap_or_default(),
        os: config.os.unwrap_or_default(),
        created: config.created.unwrap_or_default(),
        docker_version: config.docker_version.unwrap_or_default(),
        layers,
    })
}

/// Picks the manifest of the image `reference` names, and checks that its layers exist.
fn choose(archive: &Archive, reference: Option<&str>) -> Result<Chosen> {
    let chosen = if archive.exists("manifest.json") {
        choose_docker(archive, reference)?
    } else if archive.exists("index.json") {
        choose_oci(archive, reference)?
    } else {
        return Err(ScanError::Missing {
            path: archive.path().into(),
            what: "manifest",
            name: "manifest.json (docker save) or index.json (OCI layout)".into(),
        });
    };
    for ChosenLayer { name, .. } in &chosen.layers {
        // Checked up front (an index lookup, no read), so a warm scan fails on a missing
        // layer just like a cold one.
        if !archive.exists(name) {
            return Err(ScanError::Missing {
                path: archive.path().into(),
                what: "layer",
                name: name.clone(),
            });
        }
    }
    Ok(chosen)
}

fn choose_docker(archive: &Archive, reference: Option<&str>) -> Result<Chosen> {
    let bytes = archive.read_metadata("manifest.json", "manifest")?;
    let bad = |reason: String| ScanError::InvalidMetadata {
        path: archive.path().into(),
        what: "manifest",
        name: "manifest.json".into(),
        reason,
    };
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if entries.is_empty() {
        return Err(bad("it lists no image".into()));
    }
    let index = match reference {
        None => 0,
        Some(r) => {
            let found = entries.iter().position(|e| {
                let tags = e.repo_tags.as_deref().unwrap_or_default();
                tags.iter().any(|t| same_ref(t, r)) || id_matches(&e.config, r)
            });
            found.ok_or_else(|| {
                not_found(
                    archive,
                    r,
                    entries.iter().flat_map(|e| e.repo_tags.iter().flatten()),
                )
            })?
        }
    };
    let Some(entry) = entries.into_iter().nth(index) else {
        return Err(bad("it lists no image".into()));
    };
    let config_name = clean_name(archive, &entry.config, "config")?;
    let config_digest = blob_digest_of(&config_name).or_else(|| {
        // Classic layout: the config is `<image ID hex>.json`.
        config_name
            .strip_suffix(".json")
            .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
    });
    let mut layers = Vec::with_capacity(entry.layers.len());
    for layer in &entry.layers {
        let name = clean_name(archive, layer, "layer")?;
        // Classic docker save may store a repeated layer as a link to the first copy.
        let name = archive.resolve(&name).unwrap_or(name);
        let digest = blob_digest_of(&name);
        layers.push(ChosenLayer {
            name,
            media_type: None,
            blob_digest: digest,
            size: None,
        });
    }
    Ok(Chosen {
        repo_tags: entry.repo_tags.unwrap_or_default(),
        config_name,
        config_digest,
        layers,
    })
}

fn choose_oci(archive: &Archive, reference: Option<&str>) -> Result<Chosen> {
    let index: OciIndex = parse_json(archive, "index.json", "index")?;
    // Every image manifest reachable from index.json, with its names.
    let mut found: Vec<(Descriptor, Found)> = Vec::new();
    let mut walk = IndexWalk::default();
    collect_manifests(archive, index, &Found::default(), 0, &mut walk, &mut found)?;
    let host_arch = go_arch();
    let pick = match reference {
        Some(r) => {
            let by_name = found
                .iter()
                .position(|(d, names)| names.matches(r) || id_matches(&d.digest, r));
            match by_name {
                Some(i) => i,
                // The image ID is the config's digest: read the (small) manifests.
                None => found
                    .iter()
                    .position(|(d, _)| {
                        config_digest_of(archive, d).is_some_and(|id| id_matches(&id, r))
                    })
                    .ok_or_else(|| {
                        not_found(archive, r, found.iter().flat_map(|(_, f)| &f.tags))
                    })?,
            }
        }
        None => found
            .iter()
            .position(|(d, _)| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == host_arch)
            })
            .or_else(|| {
                found.iter().position(|(d, _)| {
                    d.platform.as_ref().is_none_or(|p| p.os != "unknown")
                        && !d.annotations.contains_key("vnd.docker.reference.type")
                })
            })
            .unwrap_or(0),
    };
    let Some((descriptor, Found { tags, .. })) = found.into_iter().nth(pick) else {
        return Err(ScanError::InvalidMetadata {
            path: archive.path().into(),
            what: "index",
            name: "index.json".into(),
            reason: "it lists no image manifest".into(),
        });
    };
    let manifest_name = blob_name(archive, &descriptor.digest, "manifest")?;
    let manifest: OciManifest =
        parse_blob(archive, &manifest_name, &descriptor.digest, "manifest")?;
    let config_name = blob_name(archive, &manifest.config.digest, "config")?;
    let config_digest = blob_digest_of(&config_name);
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for layer in manifest.layers {
        let name = blob_name(archive, &layer.digest, "layer")?;
        let digest = blob_digest_of(&name);
        layers.push(ChosenLayer {
            name,
            media_type: layer.media_type,
            blob_digest: digest,
            size: layer.size,
        });
    }
    Ok(Chosen {
        repo_tags: tags,
        config_name,
        config_digest,
        layers,
    })
}

/// The config digest a manifest descriptor leads to, if it can be read.
fn config_digest_of(archive: &Archive, d: &Descriptor) -> Option<String> {
    let name = blob_name(archive, &d.digest, "manifest").ok()?;
    let manifest: OciManifest = parse_blob(archive, &name, &d.digest, "manifest").ok()?;
    Some(manifest.config.digest)
}

/// What walking nested indexes has seen so far.
#[derive(Default)]
struct IndexWalk {
    /// Digests of the nested indexes read.
    visited: HashSet<String>,
    /// Descriptors seen.
    descriptors: usize,
}

fn collect_manifests(
    archive: &Archive,
    index: OciIndex,
    parent: &Found,
    depth: usize,
    walk: &mut IndexWalk,
    out: &mut Vec<(Descriptor, Found)>,
) -> Result<()> {
    walk.descriptors = walk.descriptors.saturating_add(index.manifests.len());
    if walk.descriptors > MAX_DESCRIPTORS {
        return Err(ScanError::InvalidMetadata {
            path: archive.path().into(),
            what: "index",
            name: "index.json".into(),
            reason: format!(
                "it and its nested indexes list more than {MAX_DESCRIPTORS} descriptors"
            ),
        });
    }
    for d in index.manifests {
        let mut found = parent.clone();
        if let Some(name) = d.annotations.get("io.containerd.image.name") {
            found.add_name(name, true);
        }
        if let Some(name) = d.annotations.get("org.opencontainers.image.ref.name") {
            // Often only a tag (`12`); a tag alone is matched but not shown when a full
            // name is known.
            let full = name.contains(':') || name.contains('/');
            found.add_name(name, full || found.tags.is_empty());
        }
        let is_index = d
            .media_type
            .as_deref()
            .is_some_and(|m| INDEX_TYPES.contains(&m));
        if is_index && depth < MAX_INDEX_DEPTH {
            if !walk.visited.insert(d.digest.clone()) {
                tracing::debug!(digest = %d.digest, "nested index listed again; read once");
                continue;
            }
            let name = blob_name(archive, &d.digest, "index")?;
            let nested: OciIndex = parse_blob(archive, &name, &d.digest, "index")?;
            collect_manifests(archive, nested, &found, depth + 1, walk, out)?;
        } else if !is_index {
            out.push((d, found));
        }
    }
    Ok(())
}

/// The names an index gives one manifest: tags to show, and every name to match.
#[derive(Clone, Debug, Default)]
struct Found {
    tags: Vec<String>,
    names: Vec<String>,
}

impl Found {
    fn add_name(&mut self, name: &str, show: bool) {
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
        }
        let familiar = familiar(name);
        if show && !self.tags.contains(&familiar) {
            self.tags.push(familiar);
        }
    }

    fn matches(&self, r: &str) -> bool {
        self.names.iter().any(|n| n == r || same_ref(n, r))
    }
}

/// `docker.io/library/debian:12` → `debian:12`, as Docker shows it.
fn familiar(name: &str) -> String {
    let short = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    short.to_owned()
}

fn parse_json<T: serde::de::DeserializeOwned>(
    archive: &Archive,
    name: &str,
    what: &'static str,
) -> Result<T> {
    let bytes = archive.read_metadata(name, what)?;
    serde_json::from_slice(&bytes).map_err(|e| ScanError::InvalidMetadata {
        path: archive.path().into(),
        what,
        name: name.into(),
        reason: e.to_string(),
    })
}

/// Reads a JSON blob and checks it has the digest its descriptor gives.
fn parse_blob<T: serde::de::DeserializeOwned>(
    archive: &Archive,
    name: &str,
    digest: &str,
    what: &'static str,
) -> Result<T> {
    let bytes = archive.read_metadata(name, what)?;
    let actual = sha256(&bytes);
    if actual.as_str() != digest {
        return Err(ScanError::DigestMismatch {
            what,
            name: name.into(),
            expected: digest.into(),
            actual: actual.to_string(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ScanError::InvalidMetadata {
        path: archive.path().into(),
        what,
        name: name.into(),
        reason: e.to_string(),
    })
}

/// `blobs/sha256/<hex>` for a descriptor digest; only sha256 is supported.
fn blob_name(archive: &Archive, digest: &str, what: &'static str) -> Result<String> {
    let d = Digest::parse(digest).map_err(|e| ScanError::InvalidMetadata {
        path: archive.path().into(),
        what,
        name: digest.into(),
        reason: format!("unsupported digest: {e}"),
    })?;
    Ok(format!("blobs/sha256/{}", d.hex()))
}

/// The digest a `blobs/sha256/<hex>` name stands for.
fn blob_digest_of(name: &str) -> Option<Digest> {
    let hex = name.strip_prefix("blobs/sha256/")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn clean_name(archive: &Archive, raw: &str, what: &'static str) -> Result<String> {
    clean_path(raw).ok_or_else(|| ScanError::InvalidMetadata {
        path: archive.path().into(),
        what: "manifest",
        name: "manifest.json".into(),
        reason: format!("{what} name {raw:?} is absolute or leaves the archive"),
    })
}

fn not_found<'a>(
    archive: &Archive,
    reference: &str,
    tags: impl Iterator<Item = &'a String>,
) -> ScanError {
    // Quoted and escaped: tags come from the archive and must not break the line.
    let tags: Vec<String> = tags.map(|t| format!("{t:?}")).collect();
    ScanError::ImageNotFound {
        path: archive.path().into(),
        reference: reference.into(),
        available: if tags.is_empty() {
            "no tagged image".into()
        } else {
            tags.join(", ")
        },
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::digest(bytes).into())
}

/// True when `r` picks an image by ID: `sha256:<hex>` or a hex prefix of 12+ digits of
/// the name's digest (a config file name or a manifest digest).
fn id_matches(name: &str, r: &str) -> bool {
    let hex = r.strip_prefix("sha256:").unwrap_or(r);
    if hex.len() < 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.strip_suffix(".json").unwrap_or(base);
    let base = base.strip_prefix("sha256:").unwrap_or(base);
    base.starts_with(&hex.to_ascii_lowercase())
}

/// Compares image references the way users write them: `debian` = `debian:latest` =
/// `docker.io/library/debian:latest`.
pub(crate) fn same_ref(a: &str, b: &str) -> bool {
    normalize_ref(a) == normalize_ref(b)
}

fn normalize_ref(r: &str) -> String {
    let r = r.trim();
    let (name, digest) = r.split_once('@').map_or((r, None), |(n, d)| (n, Some(d)));
    let last = name.rsplit('/').next().unwrap_or(name);
    let has_tag = last.contains(':');
    let mut name = name.to_owned();
    if !has_tag && digest.is_none() {
        name.push_str(":latest");
    }
    let first = name.split('/').next().unwrap_or_default();
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_registry {
        name = if name.contains('/') {
            format!("docker.io/{name}")
        } else {
            format!("docker.io/library/{name}")
        };
    }
    match digest {
        Some(d) => format!("{name}@{d}"),
        None => name,
    }
}

/// The GOARCH name of this machine, as OCI platforms use.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize() {
        for (a, b, same) in [
            ("debian", "debian:latest", true),
            ("debian:12", "docker.io/library/debian:12", true),
            ("library/debian:12", "debian:12", true),
            ("debian:12", "debian:11", false),
            ("ghcr.io/x/y:1", "ghcr.io/x/y:1", true),
            ("ghcr.io/x/y:1", "x/y:1", false),
            ("localhost:5000/app", "localhost:5000/app:latest", true),
            ("sample/app-a:1.0", "docker.io/sample/app-a:1.0", true),
        ] {
            assert_eq!(same_ref(a, b), same, "{a} vs {b}");
        }
    }

    #[test]
    fn ids_match_by_prefix() {
        let hex = "a".repeat(64);
        assert!(id_matches(&format!("{hex}.json"), "aaaaaaaaaaaa"));
        assert!(id_matches(
            &format!("blobs/sha256/{hex}"),
            &format!("sha256:{hex}")
        ));
        assert!(!id_matches(&format!("{hex}.json"), "aaaa"));
        assert!(!id_matches(&format!("{hex}.json"), "debian:12"));
    }
}
