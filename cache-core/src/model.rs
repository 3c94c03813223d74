//! The JSON documents a scan cache stores, compatible with the reference scanner.
//!
//! Field names are PascalCase, empty optional fields are omitted when written, and every
//! field this crate does not model is kept in `extra` and written back unchanged, so a
//! document written by another tool survives a read→write cycle without loss.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Fields of a document that this version does not model, preserved verbatim.
pub type Extra = Map<String, Value>;

/// Deserializes `null` as the type's default, as Go's JSON encoder may write it.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reads the `SchemaVersion` of a stored document without decoding the rest of it.
///
/// Returns `None` when the bytes are not a JSON object with an integer `SchemaVersion`.
pub fn schema_version_of(bytes: &[u8]) -> Option<i64> {
    // A derived struct would also accept an array (`[2]`); only an object is a document.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "SchemaVersion")]
        schema_version: i64,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .map(|p| p.schema_version)
}

/// A document type a cache stores: [`ArtifactInfo`] or [`BlobInfo`].
pub trait Document: Serialize + serde::de::DeserializeOwned + Send + Sync {
    /// The kind of entry that holds this document.
    const KIND: crate::EntryKind;
    /// The current `SchemaVersion` of this document.
    const SCHEMA_VERSION: i64;
}

impl Document for ArtifactInfo {
    const KIND: crate::EntryKind = crate::EntryKind::Artifact;
    const SCHEMA_VERSION: i64 = 1;
}

impl Document for BlobInfo {
    const KIND: crate::EntryKind = crate::EntryKind::Blob;
    const SCHEMA_VERSION: i64 = 2;
}

/// The record stored once per image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArtifactInfo {
    /// Document format version; [`ArtifactInfo::SCHEMA_VERSION`] when current.
    #[serde(default)]
    pub schema_version: i64,
    /// CPU architecture of the image, e.g. `amd64`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub architecture: String,
    /// Creation time as written in the image config (kept as the original string).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created: String,
    /// Docker version that built the image.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub docker_version: String,
    /// Operating system of the image, e.g. `linux`.
    #[serde(
        rename = "OS",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub os: String,
    /// Packages recorded in the image history (distroless images).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub history_packages: Vec<Package>,
    /// Misconfiguration findings for the image config, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misconfiguration: Option<Value>,
    /// Secret findings for the image config, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Value>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ArtifactInfo {
    /// The current artifact document version.
    pub const SCHEMA_VERSION: i64 = <Self as Document>::SCHEMA_VERSION;

    /// True when the document was written in the current format.
    pub fn is_current(&self) -> bool {
        self.schema_version == Self::SCHEMA_VERSION
    }
}

/// One layer's analysis result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlobInfo {
    /// Document format version; [`BlobInfo::SCHEMA_VERSION`] when current.
    #[serde(default)]
    pub schema_version: i64,
    /// Size of the layer in bytes.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub size: i64,
    /// Digest of the layer as stored (compressed) in the archive.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub digest: String,
    /// Digest of the uncompressed layer.
    #[serde(
        rename = "DiffID",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub diff_id: String,
    /// The build instruction that created the layer.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub created_by: String,
    /// Directories this layer made opaque (`.wh..wh..opq`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub opaque_dirs: Vec<String>,
    /// Files this layer deleted (`.wh.NAME`).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub whiteout_files: Vec<String>,
    /// The operating system found in this layer.
    #[serde(rename = "OS", default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    /// The package repository found in this layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    /// Package databases found in this layer.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub package_infos: Vec<PackageInfo>,
    /// Language-specific applications, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<Value>,
    /// Misconfiguration findings, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub misconfigurations: Option<Value>,
    /// Secret findings, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    /// License files, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Value>,
    /// Cryptographic assets, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto_assets: Option<Value>,
    /// Build information (e.g. Red Hat content sets), as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_info: Option<Value>,
    /// Custom analyser results, as stored by the reference tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_resources: Option<Value>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl BlobInfo {
    /// The current blob document version.
    pub const SCHEMA_VERSION: i64 = <Self as Document>::SCHEMA_VERSION;

    /// True when the document was written in the current format.
    pub fn is_current(&self) -> bool {
        self.schema_version == Self::SCHEMA_VERSION
    }
}

/// An operating system found in a layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Os {
    /// Distribution family, e.g. `alpine`, `debian`, `ubuntu`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub family: String,
    /// Release, e.g. `3.10.4`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// True when the release is past its end of life.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_false"
    )]
    pub eosl: bool,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The package repository a layer is configured for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Repository {
    /// Repository family, e.g. `alpine`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub family: String,
    /// Repository release, e.g. `3.10`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub release: String,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The packages read from one package database file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PackageInfo {
    /// Path of the database inside the image, e.g. `lib/apk/db/installed`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub file_path: String,
    /// The installed packages it lists.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub packages: Vec<Package>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One installed OS package.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Package {
    /// `name@version[-release]`, with `epoch:` before the version when non-zero.
    #[serde(
        rename = "ID",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    /// Package name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Upstream version.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub version: String,
    /// Distribution release.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub release: String,
    /// Version epoch; omitted when zero.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub epoch: i64,
    /// CPU architecture.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub arch: String,
    /// Source package name.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub src_name: String,
    /// Source package version.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub src_version: String,
    /// Source package release.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub src_release: String,
    /// Source package epoch; omitted when zero.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "is_zero"
    )]
    pub src_epoch: i64,
    /// License names.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub licenses: Vec<String>,
    /// Maintainer, e.g. `Name <mail>`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub maintainer: String,
    /// IDs of the installed packages this one depends on.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub depends_on: Vec<String>,
    /// Checksum of the package, e.g. `sha1:…`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub digest: String,
    /// Files the package installed.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub installed_files: Vec<String>,
    /// The analyser that found the package, e.g. `dpkg`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub analyzed_by: String,
    /// Fields this version does not model (e.g. `Identifier`, `Layer`).
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `json` as `T`, writes it back, and checks both JSON values are equal.
    fn check_round_trip<T>(json: &str)
    where
        T: serde::de::DeserializeOwned + Serialize,
    {
        let original: Value = serde_json::from_str(json).unwrap();
        let doc: T = serde_json::from_str(json).unwrap();
        let written = serde_json::to_value(&doc).unwrap();
        assert_eq!(written, original, "round trip changed the document");
    }

    const SPEC_ARTIFACT: &str = r#"{"SchemaVersion":1,"Architecture":"amd64","Created":"2020-01-23T16:53:06.686519038Z","DockerVersion":"18.06.1-ce","OS":"linux"}"#;

    const SPEC_BLOB: &str = r#"{"SchemaVersion":2,"Size":5818880,"DiffID":"sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0","CreatedBy":"ADD file:a4d9c4b3 in / ","OS":{"Family":"alpine","Name":"3.10.4"},"Repository":{"Family":"alpine","Release":"3.10"},"PackageInfos":[{"FilePath":"lib/apk/db/installed","Packages":[{"ID":"alpine-baselayout@3.1.2-r0","Name":"alpine-baselayout","Version":"3.1.2-r0","Arch":"x86_64","SrcName":"alpine-baselayout","SrcVersion":"3.1.2-r0","Licenses":["GPL-2.0-only"],"Maintainer":"Natanael Copa \u003cncopa@alpinelinux.org\u003e","DependsOn":["busybox@1.30.1-r3","musl@1.1.22-r3"],"Digest":"sha1:574d65b4c3d0c41ac5cf7b4fa7b3a3e26b8c6d43","InstalledFiles":["etc/hosts","etc/sysctl.conf"],"AnalyzedBy":"apk"}]}]}"#;

    const SPEC_DPKG_PACKAGE: &str = r#"{"ID":"adwaita-icon-theme@43-1","Name":"adwaita-icon-theme","Version":"43","Release":"1","Arch":"all","SrcName":"adwaita-icon-theme","SrcVersion":"43","SrcRelease":"1","Maintainer":"Debian GNOME Maintainers <pkg-gnome-maintainers@lists.alioth.debian.org>","DependsOn":["gtk-update-icon-cache@3.24.38-2~deb12u3","hicolor-icon-theme@0.17-2"],"AnalyzedBy":"dpkg"}"#;

    #[test]
    fn spec_examples_round_trip() {
        check_round_trip::<ArtifactInfo>(SPEC_ARTIFACT);
        check_round_trip::<BlobInfo>(SPEC_BLOB);
        check_round_trip::<Package>(SPEC_DPKG_PACKAGE);
    }

    /// Documents the reference scanner (v0.76) wrote into Redis when it scanned a small
    /// hand-built Alpine image (one layer with an apk database and os-release).
    #[test]
    fn reference_tool_documents_round_trip() {
        let blob = include_str!("testdata/reference-blob.json");
        let artifact = include_str!("testdata/reference-artifact.json");
        check_round_trip::<BlobInfo>(blob);
        check_round_trip::<ArtifactInfo>(artifact);
        let doc: BlobInfo = serde_json::from_str(blob).unwrap();
        assert!(doc.is_current() && doc.extra.is_empty());
        let pkgs = &doc.package_infos[0].packages;
        assert_eq!(pkgs.len(), 2);
        assert!(
            pkgs.iter().all(|p| p.extra.is_empty()),
            "every field is modelled"
        );
        assert_eq!(pkgs[0].depends_on, ["musl@1.1.22-r3"]);
    }

    #[test]
    fn spec_examples_decode_into_fields() {
        let artifact: ArtifactInfo = serde_json::from_str(SPEC_ARTIFACT).unwrap();
        assert!(artifact.is_current());
        assert_eq!(artifact.architecture, "amd64");
        assert_eq!(artifact.os, "linux");
        assert!(artifact.extra.is_empty());

        let blob: BlobInfo = serde_json::from_str(SPEC_BLOB).unwrap();
        assert!(blob.is_current());
        assert_eq!(blob.size, 5_818_880);
        assert_eq!(blob.os.as_ref().unwrap().name, "3.10.4");
        let pkg = &blob.package_infos[0].packages[0];
        assert_eq!(pkg.id, "alpine-baselayout@3.1.2-r0");
        assert_eq!(pkg.depends_on.len(), 2);
        assert_eq!(pkg.maintainer, "Natanael Copa <ncopa@alpinelinux.org>");
        assert!(blob.extra.is_empty() && pkg.extra.is_empty());
    }

    #[test]
    fn unknown_fields_survive_at_every_level() {
        let json = r#"{
            "SchemaVersion": 2,
            "Digest": "sha256:aa",
            "FutureTopLevel": {"nested": [1, 2, {"x": null}]},
            "OS": {"Family": "debian", "Name": "12.11", "Extended": true},
            "Repository": {"Family": "debian", "Release": "12", "Mirror": "m"},
            "PackageInfos": [{
                "FilePath": "var/lib/dpkg/status",
                "Since": 3,
                "Packages": [{
                    "ID": "bash@5.2.15-2",
                    "Name": "bash",
                    "Epoch": 1,
                    "Identifier": {"PURL": "pkg:deb/debian/bash@5.2.15-2", "UID": "abc"},
                    "Layer": {"DiffID": "sha256:bb"}
                }]
            }],
            "Applications": [{"Type": "npm", "FilePath": "package-lock.json"}],
            "BuildInfo": {"ContentSets": ["a"]},
            "CustomResources": []
        }"#;
        check_round_trip::<BlobInfo>(json);

        let artifact = r#"{"SchemaVersion":1,"OS":"linux","HistoryPackages":[{"Name":"x","Version":"1"}],"Secret":{"FilePath":"f"},"Unknown":"kept"}"#;
        check_round_trip::<ArtifactInfo>(artifact);
    }

    #[test]
    fn empty_fields_are_omitted_and_nulls_read_as_empty() {
        let blob = BlobInfo {
            schema_version: BlobInfo::SCHEMA_VERSION,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&blob).unwrap(),
            r#"{"SchemaVersion":2}"#
        );

        let with_nulls =
            r#"{"SchemaVersion":2,"Digest":null,"OpaqueDirs":null,"PackageInfos":null,"OS":null}"#;
        let blob: BlobInfo = serde_json::from_str(with_nulls).unwrap();
        assert_eq!(blob.os, None);
        assert_eq!(
            serde_json::to_string(&blob).unwrap(),
            r#"{"SchemaVersion":2}"#
        );
    }

    #[test]
    fn stale_documents_are_recognised() {
        let old: BlobInfo = serde_json::from_str(r#"{"SchemaVersion":1}"#).unwrap();
        assert!(!old.is_current());
        let missing: ArtifactInfo = serde_json::from_str("{}").unwrap();
        assert!(!missing.is_current());
        assert_eq!(
            schema_version_of(br#"{"SchemaVersion":2,"X":[1]}"#),
            Some(2)
        );
        assert_eq!(schema_version_of(b"not json"), None);
        assert_eq!(schema_version_of(br#"{"SchemaVersion":"2"}"#), None);
        assert_eq!(schema_version_of(b"[2]"), None);
        assert_eq!(schema_version_of(b" \n{\"SchemaVersion\":1}"), Some(1));
    }
}
