//! Image archive layouts: classic docker-save, OCI image layout (as a tar or a
//! directory) and Docker ≥ 25's OCI-style save.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::Path,
};

use serde::Serialize;

use crate::{ImageBuilder, OCI_INDEX, OCI_MANIFEST, sha256_digest, tar_of};

/// One image of a docker-save `manifest.json`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// An OCI descriptor of an image manifest, as `index.json` lists it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDescriptor {
    media_type: &'static str,
    digest: String,
    size: usize,
    annotations: BTreeMap<&'static str, String>,
}

/// An OCI `index.json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<ManifestDescriptor>,
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// The entries of a classic docker-save archive (`<id>/layer.tar`, `<image id>.json`,
/// `manifest.json`, `repositories`), by name. Layers shared by several images are
/// stored once.
pub fn docker_save_entries(images: &[&ImageBuilder]) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for image in images {
        let config = image.config();
        let config_name = format!("{}.json", hex_of(&sha256_digest(&config)));
        let mut layers = Vec::new();
        for layer in &image.layers {
            let name = format!("{}/layer.tar", hex_of(&layer.blob_digest));
            files.insert(name.clone(), layer.blob.clone());
            files.insert(
                format!("{}/VERSION", hex_of(&layer.blob_digest)),
                b"1.0".to_vec(),
            );
            layers.push(name);
        }
        for tag in &image.tags {
            if let (Some((repo, t)), Some(top)) = (tag.rsplit_once(':'), image.layers.last()) {
                repositories
                    .entry(repo.into())
                    .or_default()
                    .insert(t.into(), hex_of(&top.blob_digest).into());
            }
        }
        files.insert(config_name.clone(), config);
        manifest.push(DockerEntry {
            config: config_name,
            repo_tags: image.tags.clone(),
            layers,
        });
    }
    files.insert(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).expect("manifest serializes"),
    );
    files.insert(
        "repositories".into(),
        serde_json::to_vec(&repositories).expect("repositories serialize"),
    );
    files
}

/// A classic docker-save archive.
pub fn docker_save(images: &[&ImageBuilder]) -> Vec<u8> {
    tar_of(&docker_save_entries(images))
}

/// The entries of an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/*`),
/// with Docker ≥ 25's `manifest.json` added when `docker_manifest` is set.
pub fn oci_entries(images: &[&ImageBuilder], docker_manifest: bool) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut manifests = Vec::new();
    let mut docker = Vec::new();
    for image in images {
        let config = image.config();
        let manifest = image.oci_manifest();
        let blob = |d: &str| format!("blobs/sha256/{}", hex_of(d));
        for layer in &image.layers {
            files.insert(blob(&layer.blob_digest), layer.blob.clone());
        }
        let config_digest = sha256_digest(&config);
        files.insert(blob(&config_digest), config);
        let manifest_digest = sha256_digest(&manifest);
        let size = manifest.len();
        files.insert(blob(&manifest_digest), manifest);
        // One descriptor per tag, or one without names.
        let tag_list: Vec<Option<&String>> = if image.tags.is_empty() {
            vec![None]
        } else {
            image.tags.iter().map(Some).collect()
        };
        for tag in tag_list {
            let mut annotations = BTreeMap::new();
            if let Some(tag) = tag {
                annotations.insert("io.containerd.image.name", full_ref(tag));
                let short = tag.rsplit_once(':').map_or("latest", |(_, t)| t);
                annotations.insert("org.opencontainers.image.ref.name", short.to_owned());
            }
            manifests.push(ManifestDescriptor {
                media_type: OCI_MANIFEST,
                digest: manifest_digest.clone(),
                size,
                annotations,
            });
        }
        docker.push(DockerEntry {
            config: blob(&config_digest),
            repo_tags: image.tags.clone(),
            layers: image.layers.iter().map(|l| blob(&l.blob_digest)).collect(),
        });
    }
    let index = Index {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
    };
    files.insert(
        "index.json".into(),
        serde_json::to_vec(&index).expect("index serializes"),
    );
    files.insert(
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    );
    if docker_manifest {
        files.insert(
            "manifest.json".into(),
            serde_json::to_vec(&docker).expect("manifest serializes"),
        );
    }
    files
}

/// `docker.io/library/` added as Docker writes `io.containerd.image.name`.
fn full_ref(tag: &str) -> String {
    let first = tag.split('/').next().unwrap_or_default();
    if tag.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        tag.to_owned()
    } else if tag.contains('/') {
        format!("docker.io/{tag}")
    } else {
        format!("docker.io/library/{tag}")
    }
}

/// An OCI image layout archive (tar).
pub fn oci_archive(images: &[&ImageBuilder]) -> Vec<u8> {
    tar_of(&oci_entries(images, false))
}

/// A Docker ≥ 25 `docker save` archive: an OCI layout plus `manifest.json`.
pub fn docker_save_oci(images: &[&ImageBuilder]) -> Vec<u8> {
    tar_of(&oci_entries(images, true))
}

/// Writes an OCI image layout directory.
pub fn write_oci_dir(images: &[&ImageBuilder], dir: &Path) -> io::Result<()> {
    write_entries(&oci_entries(images, false), dir)
}

/// Writes entries as files under `dir`, creating directories as needed.
pub fn write_entries(entries: &BTreeMap<String, Vec<u8>>, dir: &Path) -> io::Result<()> {
    let dirs: BTreeSet<&str> = entries
        .keys()
        .filter_map(|name| name.rsplit_once('/').map(|(d, _)| d))
        .collect();
    for d in dirs {
        std::fs::create_dir_all(dir.join(d))?;
    }
    for (name, data) in entries {
        std::fs::write(dir.join(name), data)?;
    }
    Ok(())
}
