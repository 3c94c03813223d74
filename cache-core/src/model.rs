//! The JSON documents a scan cache stores, compatible with the reference scanner.
//!
//! Field names are PascalCase, empty optional fields are omitted when written, and every
//! field this crate does not model is kept in `extra` and written back unchanged, so a
//! document written by another tool survives a read→write cycle without loss.
//!
//! Reading follows Go's `encoding/json`, which wrote most stored documents: `null` reads
//! as the field's zero value (so `"SchemaVersion": null` reads as 0, a stale document),
//! and when a key appears twice the last value wins.

use std::{borrow::Cow, fmt};

use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, MapAccess, Visitor},
};
use serde_json::{Map, Value};

/// Fields of a document that this version does not model, preserved verbatim.
pub type Extra = Map<String, Value>;

/// Implements `Deserialize` for a document struct from the list of JSON names it models:
/// each listed name is read into its field (`null` reads as the field's default), and
/// every other key is kept in `extra`.
///
/// Hand-written rather than derived for speed: the derived code for a struct with a
/// `#[serde(flatten)]` field reads keys through serde's buffering machinery, and each
/// nullable field through a `deserialize_with` wrapper; with strings read in one step
/// (see [`Nullable`]) a 70-package blob decodes 15% faster. The serializer stays
/// derived; `every_field_round_trips` checks that the two name lists agree.
macro_rules! deserialize_document {
    ($ty:ident, $expecting:literal, { $($name:literal => $field:ident),* $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct DocVisitor;
                impl<'de> Visitor<'de> for DocVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$ty, A::Error> {
                        let mut doc = $ty::default();
                        while let Some(Key(key)) = map.next_key()? {
                            match &*key {
                                $($name => doc.$field = Nullable::read(&mut map)?,)*
                                _ => {
                                    let value = map.next_value()?;
                                    doc.extra.insert(key.into_owned(), value);
                                }
                            }
                        }
                        Ok(doc)
                    }
                }
                deserializer.deserialize_map(DocVisitor)
            }
        }
    };
}

/// A field type whose JSON value may be `null`, read as the type's default (Go's JSON
/// encoder writes `null` for empty slices and pointers).
trait Nullable<'de>: Sized {
    /// Reads the next value of `map`.
    fn read<A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error>;
}

/// Implements [`Nullable`] through `Option`.
macro_rules! nullable_via_option {
    ($($ty:ty),*) => {$(
        impl<'de> Nullable<'de> for $ty {
            fn read<A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error> {
                Ok(map.next_value::<Option<$ty>>()?.unwrap_or_default())
            }
        }
    )*};
}

nullable_via_option!(
    i64,
    f64,
    bool,
    Vec<String>,
    Vec<Package>,
    Vec<PackageInfo>,
    Vec<Application>,
    Vec<LicenseFile>,
    Vec<LicenseFinding>,
    Option<Value>,
    Option<Os>,
    Option<Repository>,
    Option<PkgIdentifier>
);

/// Strings, the most common fields, are read in one step rather than through `Option`
/// (which looks for `null` first and then reads the string): 7% off decoding a blob.
impl<'de> Nullable<'de> for String {
    fn read<A: MapAccess<'de>>(map: &mut A) -> Result<Self, A::Error> {
        Ok(map.next_value::<StringOrNull>()?.0)
    }
}

/// A string, or `null` read as the empty string.
struct StringOrNull(String);

impl<'de> Deserialize<'de> for StringOrNull {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringVisitor;
        impl Visitor<'_> for StringVisitor {
            type Value = StringOrNull;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringOrNull, E> {
                Ok(StringOrNull(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<StringOrNull, E> {
                Ok(StringOrNull(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringOrNull, E> {
                Ok(StringOrNull(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<StringOrNull, E> {
                Ok(StringOrNull(String::new()))
            }
        }
        deserializer.deserialize_any(StringVisitor)
    }
}

/// An object key, borrowed from the input when the deserializer allows it.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Key<'de>, E> {
                std::str::from_utf8(v)
                    .map(|v| Key(Cow::Owned(v.to_owned())))
                    .map_err(|_| E::invalid_value(de::Unexpected::Bytes(v), &self))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Writes a float as Go's `encoding/json` does for the values documents hold: a whole
/// number without a fraction, so a document read and written back compares equal.
fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        #[allow(clippy::cast_possible_truncation)]
        return s.serialize_i64(*v as i64);
    }
    s.serialize_f64(*v)
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
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArtifactInfo {
    /// Document format version; [`ArtifactInfo::SCHEMA_VERSION`] when current.
    pub schema_version: i64,
    /// CPU architecture of the image, e.g. `amd64`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    /// Creation time as written in the image config (kept as the original string).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created: String,
    /// Docker version that built the image.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    /// Operating system of the image, e.g. `linux`.
    #[serde(rename = "OS", skip_serializing_if = "String::is_empty")]
    pub os: String,
    /// Packages recorded in the image history (distroless images).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history_packages: Vec<Package>,
    /// Misconfiguration findings for the image config, as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misconfiguration: Option<Value>,
    /// Secret findings for the image config, as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BlobInfo {
    /// Document format version; [`BlobInfo::SCHEMA_VERSION`] when current.
    pub schema_version: i64,
    /// Size of the layer in bytes.
    #[serde(skip_serializing_if = "is_zero")]
    pub size: i64,
    /// Digest of the layer as stored (compressed) in the archive.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Digest of the uncompressed layer.
    #[serde(rename = "DiffID", skip_serializing_if = "String::is_empty")]
    pub diff_id: String,
    /// The build instruction that created the layer.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Directories this layer made opaque (`.wh..wh..opq`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub opaque_dirs: Vec<String>,
    /// Files this layer deleted (`.wh.NAME`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub whiteout_files: Vec<String>,
    /// The operating system found in this layer.
    #[serde(rename = "OS", skip_serializing_if = "Option::is_none")]
    pub os: Option<Os>,
    /// The package repository found in this layer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    /// Package databases found in this layer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub package_infos: Vec<PackageInfo>,
    /// Language packages found in this layer: one entry per package file (or per
    /// lock file), as the reference tool stores them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<Application>,
    /// Misconfiguration findings, as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misconfigurations: Option<Value>,
    /// Secret findings, as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    /// Licenses found in files of this layer, e.g. Debian copyright files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<LicenseFile>,
    /// Cryptographic assets, as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crypto_assets: Option<Value>,
    /// Build information (e.g. Red Hat content sets), as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_info: Option<Value>,
    /// Custom analyser results, as stored by the reference tool.
    #[serde(skip_serializing_if = "Option::is_none")]
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Os {
    /// Distribution family, e.g. `alpine`, `debian`, `ubuntu`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub family: String,
    /// Release, e.g. `3.10.4`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// True when the release is past its end of life.
    #[serde(skip_serializing_if = "is_false")]
    pub eosl: bool,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The package repository a layer is configured for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Repository {
    /// Repository family, e.g. `alpine`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub family: String,
    /// Repository release, e.g. `3.10`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub release: String,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The packages read from one package database file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PackageInfo {
    /// Path of the database inside the image, e.g. `lib/apk/db/installed`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file_path: String,
    /// The installed packages it lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One installed OS package.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Package {
    /// `name@version[-release]`, with `epoch:` before the version when non-zero.
    #[serde(rename = "ID", skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Package name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The package's identifiers (PURL, UID, BOM reference). Analysers leave it empty:
    /// identifiers are computed when layers are applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<PkgIdentifier>,
    /// Upstream version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Distribution release.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub release: String,
    /// Version epoch; omitted when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub epoch: i64,
    /// CPU architecture.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub arch: String,
    /// True for a development dependency (e.g. `packages-dev` of Composer).
    #[serde(skip_serializing_if = "is_false")]
    pub dev: bool,
    /// Source package name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src_name: String,
    /// Source package version.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src_version: String,
    /// Source package release.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src_release: String,
    /// Source package epoch; omitted when zero.
    #[serde(skip_serializing_if = "is_zero")]
    pub src_epoch: i64,
    /// License names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<String>,
    /// Maintainer, e.g. `Name <mail>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub maintainer: String,
    /// True for an indirect dependency (kept beside `Relationship` as the reference tool
    /// writes it).
    #[serde(skip_serializing_if = "is_false")]
    pub indirect: bool,
    /// How the package relates to its application: `root`, `workspace`, `direct` or
    /// `indirect`; empty when unknown.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub relationship: String,
    /// IDs of the installed packages this one depends on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// The file the package was found in (language packages), e.g.
    /// `usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file_path: String,
    /// Checksum of the package, e.g. `sha1:…`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// Files the package installed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub installed_files: Vec<String>,
    /// The analyser that found the package, e.g. `dpkg`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub analyzed_by: String,
    /// Fields this version does not model (e.g. `Layer`, `Locations`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The identifiers of a package.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PkgIdentifier {
    /// Package URL, e.g. `pkg:npm/%40scope/pkg@1.0.0`.
    #[serde(rename = "PURL", skip_serializing_if = "String::is_empty")]
    pub purl: String,
    /// An ID unique within one scan result.
    #[serde(rename = "UID", skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The `bom-ref` of a CycloneDX document the package was read from.
    #[serde(rename = "BOMRef", skip_serializing_if = "String::is_empty")]
    pub bom_ref: String,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl PkgIdentifier {
    /// True when no identifier is set (and nothing unknown is kept).
    pub fn is_empty(&self) -> bool {
        self.purl.is_empty()
            && self.uid.is_empty()
            && self.bom_ref.is_empty()
            && self.extra.is_empty()
    }
}

/// The language packages of one package file, or of one lock file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Application {
    /// The kind of application, e.g. `python-pkg`, `node-pkg`, `gobinary`, `jar`.
    #[serde(rename = "Type")]
    pub app_type: String,
    /// The file the packages were read from.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub file_path: String,
    /// The packages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The licenses found in one file, e.g. `usr/share/doc/bash/copyright`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LicenseFile {
    /// Where the licenses come from: `dpkg` (a Debian copyright file), `header`,
    /// `license-file`.
    #[serde(rename = "Type")]
    pub license_type: String,
    /// The file read.
    pub file_path: String,
    /// The package the file belongs to (`dpkg`: the directory name under
    /// `usr/share/doc/`).
    pub pkg_name: String,
    /// The licenses found.
    pub findings: Vec<LicenseFinding>,
    /// Fields this version does not model (e.g. `Layer`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One license found in a file.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LicenseFinding {
    /// Its category (e.g. `notice`); empty when not classified.
    pub category: String,
    /// The license's name, an SPDX ID where one is known.
    pub name: String,
    /// How sure the finding is, 0 to 1; 0 when read from a declaration. A whole number
    /// is written without a fraction (`0`, `1`), as Go's encoder writes it.
    #[serde(serialize_with = "go_float")]
    pub confidence: f64,
    /// A link to the license text; may be empty.
    pub link: String,
    /// Fields this version does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

deserialize_document!(ArtifactInfo, "an artifact document (a JSON object)", {
    "SchemaVersion" => schema_version,
    "Architecture" => architecture,
    "Created" => created,
    "DockerVersion" => docker_version,
    "OS" => os,
    "HistoryPackages" => history_packages,
    "Misconfiguration" => misconfiguration,
    "Secret" => secret,
});

deserialize_document!(BlobInfo, "a blob document (a JSON object)", {
    "SchemaVersion" => schema_version,
    "Size" => size,
    "Digest" => digest,
    "DiffID" => diff_id,
    "CreatedBy" => created_by,
    "OpaqueDirs" => opaque_dirs,
    "WhiteoutFiles" => whiteout_files,
    "OS" => os,
    "Repository" => repository,
    "PackageInfos" => package_infos,
    "Applications" => applications,
    "Misconfigurations" => misconfigurations,
    "Secrets" => secrets,
    "Licenses" => licenses,
    "CryptoAssets" => crypto_assets,
    "BuildInfo" => build_info,
    "CustomResources" => custom_resources,
});

deserialize_document!(Os, "an OS object", {
    "Family" => family,
    "Name" => name,
    "Eosl" => eosl,
});

deserialize_document!(Repository, "a Repository object", {
    "Family" => family,
    "Release" => release,
});

deserialize_document!(PackageInfo, "a PackageInfos entry (a JSON object)", {
    "FilePath" => file_path,
    "Packages" => packages,
});

deserialize_document!(Package, "a package (a JSON object)", {
    "ID" => id,
    "Name" => name,
    "Identifier" => identifier,
    "Version" => version,
    "Release" => release,
    "Epoch" => epoch,
    "Arch" => arch,
    "Dev" => dev,
    "SrcName" => src_name,
    "SrcVersion" => src_version,
    "SrcRelease" => src_release,
    "SrcEpoch" => src_epoch,
    "Licenses" => licenses,
    "Maintainer" => maintainer,
    "Indirect" => indirect,
    "Relationship" => relationship,
    "DependsOn" => depends_on,
    "FilePath" => file_path,
    "Digest" => digest,
    "InstalledFiles" => installed_files,
    "AnalyzedBy" => analyzed_by,
});

deserialize_document!(PkgIdentifier, "a package identifier (a JSON object)", {
    "PURL" => purl,
    "UID" => uid,
    "BOMRef" => bom_ref,
});

deserialize_document!(Application, "an application (a JSON object)", {
    "Type" => app_type,
    "FilePath" => file_path,
    "Packages" => packages,
});

deserialize_document!(LicenseFile, "a license file (a JSON object)", {
    "Type" => license_type,
    "FilePath" => file_path,
    "PkgName" => pkg_name,
    "Findings" => findings,
});

deserialize_document!(LicenseFinding, "a license finding (a JSON object)", {
    "Category" => category,
    "Name" => name,
    "Confidence" => confidence,
    "Link" => link,
});

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

    /// The examples of docs/documents.md, which must stay true.
    const DOC_ARTIFACT: &str = r#"{"SchemaVersion":1,"Architecture":"amd64","Created":"2020-01-23T16:53:06.686519038Z","DockerVersion":"18.06.1-ce","OS":"linux"}"#;

    const DOC_BLOB: &str = r#"{"SchemaVersion":2,"Size":5818880,"DiffID":"sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0","CreatedBy":"ADD file:a4d9c4b3 in / ","OS":{"Family":"alpine","Name":"3.10.4"},"Repository":{"Family":"alpine","Release":"3.10"},"PackageInfos":[{"FilePath":"lib/apk/db/installed","Packages":[{"ID":"alpine-baselayout@3.1.2-r0","Name":"alpine-baselayout","Version":"3.1.2-r0","Arch":"x86_64","SrcName":"alpine-baselayout","SrcVersion":"3.1.2-r0","Licenses":["GPL-2.0-only"],"Maintainer":"Natanael Copa \u003cncopa@alpinelinux.org\u003e","DependsOn":["busybox@1.30.1-r3","musl@1.1.22-r3"],"Digest":"sha1:574d65b4c3d0c41ac5cf7b4fa7b3a3e26b8c6d43","InstalledFiles":["etc/hosts","etc/sysctl.conf"],"AnalyzedBy":"apk"}]}]}"#;

    const DOC_DPKG_PACKAGE: &str = r#"{"ID":"adwaita-icon-theme@43-1","Name":"adwaita-icon-theme","Version":"43","Release":"1","Arch":"all","SrcName":"adwaita-icon-theme","SrcVersion":"43","SrcRelease":"1","Maintainer":"Debian GNOME Maintainers <pkg-gnome-maintainers@lists.alioth.debian.org>","DependsOn":["gtk-update-icon-cache@3.24.38-2~deb12u3","hicolor-icon-theme@0.17-2"],"AnalyzedBy":"dpkg"}"#;

    #[test]
    fn documented_examples_round_trip() {
        check_round_trip::<ArtifactInfo>(DOC_ARTIFACT);
        check_round_trip::<BlobInfo>(DOC_BLOB);
        check_round_trip::<Package>(DOC_DPKG_PACKAGE);
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

    /// A layer blob the reference scanner (v0.76) wrote for a hand-built Debian layer
    /// with language packages and copyright files: its applications and license files
    /// decode into the typed fields and survive a read and a write.
    #[test]
    fn reference_tool_language_blob_round_trips() {
        let blob = include_str!("testdata/reference-blob-lang.json");
        check_round_trip::<BlobInfo>(blob);
        let doc: BlobInfo = serde_json::from_str(blob).unwrap();
        assert!(doc.extra.is_empty());
        let types: Vec<&str> = doc
            .applications
            .iter()
            .map(|a| a.app_type.as_str())
            .collect();
        assert!(
            types.contains(&"python-pkg") && types.contains(&"dotnet-core"),
            "{types:?}"
        );
        let node = doc
            .applications
            .iter()
            .find(|a| a.file_path == "opt/app/package.json")
            .unwrap();
        let pkg = &node.packages[0];
        assert_eq!(
            (pkg.id.as_str(), pkg.file_path.as_str()),
            ("myapp@1.0.0", "opt/app/package.json")
        );
        assert!(pkg.extra.is_empty(), "{:?}", pkg.extra);
        let dotnet = doc
            .applications
            .iter()
            .find(|a| a.app_type == "dotnet-core")
            .unwrap();
        assert!(dotnet.packages.iter().any(|p| p.relationship == "root"));
        let adduser = doc
            .licenses
            .iter()
            .find(|l| l.pkg_name == "adduser")
            .unwrap();
        assert_eq!(adduser.license_type, "dpkg");
        let names: Vec<&str> = adduser.findings.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["GPL-2.0-or-later", "BSD-3-Clause"]);
    }

    /// Every modelled field, written by the derived serializer, is read back into the
    /// same field by the hand-written deserializer (none lands in `extra`).
    #[test]
    fn every_field_round_trips() {
        let s = |v: &str| v.to_owned();
        let value = |v: &str| Some(serde_json::json!([{ "Kept": v }]));
        let package = Package {
            id: s("1:bash@5.2-2"),
            name: s("bash"),
            version: s("5.2"),
            release: s("2"),
            epoch: 1,
            arch: s("amd64"),
            src_name: s("bash-src"),
            src_version: s("5.2s"),
            src_release: s("2s"),
            src_epoch: 2,
            licenses: vec![s("GPL-3.0")],
            maintainer: s("M <m@example.org>"),
            depends_on: vec![s("libc6@2.36")],
            digest: s("sha1:00"),
            installed_files: vec![s("bin/bash")],
            analyzed_by: s("dpkg"),
            identifier: Some(PkgIdentifier {
                purl: s("pkg:deb/debian/bash@5.2-2"),
                uid: s("u"),
                bom_ref: s("b"),
                extra: Extra::new(),
            }),
            dev: true,
            indirect: true,
            relationship: s("direct"),
            file_path: s("usr/bin/bash"),
            extra: Extra::new(),
        };
        let blob = BlobInfo {
            schema_version: 2,
            size: 7,
            digest: s("sha256:aa"),
            diff_id: s("sha256:bb"),
            created_by: s("ADD x"),
            opaque_dirs: vec![s("etc/")],
            whiteout_files: vec![s("etc/x")],
            os: Some(Os {
                family: s("debian"),
                name: s("12"),
                eosl: true,
                extra: Extra::new(),
            }),
            repository: Some(Repository {
                family: s("debian"),
                release: s("12"),
                extra: Extra::new(),
            }),
            package_infos: vec![PackageInfo {
                file_path: s("var/lib/dpkg/status"),
                packages: vec![package.clone()],
                extra: Extra::new(),
            }],
            applications: vec![Application {
                app_type: s("python-pkg"),
                file_path: s("a/METADATA"),
                packages: vec![package.clone()],
                extra: Extra::new(),
            }],
            misconfigurations: value("m"),
            secrets: value("s"),
            licenses: vec![LicenseFile {
                license_type: s("dpkg"),
                file_path: s("usr/share/doc/bash/copyright"),
                pkg_name: s("bash"),
                findings: vec![LicenseFinding {
                    category: s("c"),
                    name: s("GPL-3.0-or-later"),
                    confidence: 0.5,
                    link: s("l"),
                    extra: Extra::new(),
                }],
                extra: Extra::new(),
            }],
            crypto_assets: value("c"),
            build_info: value("b"),
            custom_resources: value("r"),
            extra: Extra::new(),
        };
        let artifact = ArtifactInfo {
            schema_version: 1,
            architecture: s("amd64"),
            created: s("2020"),
            docker_version: s("18"),
            os: s("linux"),
            history_packages: vec![package],
            misconfiguration: value("m"),
            secret: value("s"),
            extra: Extra::new(),
        };
        let back: BlobInfo = serde_json::from_slice(&serde_json::to_vec(&blob).unwrap()).unwrap();
        assert_eq!(back, blob);
        let json = serde_json::to_vec(&artifact).unwrap();
        let back: ArtifactInfo = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, artifact);
    }

    #[test]
    fn nulls_read_as_zero_values_at_every_level() {
        let json = r#"{"SchemaVersion":2,"Size":null,"OS":{"Family":null,"Eosl":null},
            "PackageInfos":[{"FilePath":null,"Packages":[{"ID":null,"Name":"a",
            "Epoch":null,"Licenses":null,"DependsOn":null}]}]}"#;
        let blob: BlobInfo = serde_json::from_str(json).unwrap();
        assert_eq!(blob.size, 0);
        let os = blob.os.as_ref().unwrap();
        assert!(os.family.is_empty() && !os.eosl);
        let pkg = &blob.package_infos[0].packages[0];
        assert_eq!(
            (pkg.id.as_str(), pkg.name.as_str(), pkg.epoch),
            ("", "a", 0)
        );
        assert!(pkg.licenses.is_empty() && pkg.depends_on.is_empty());
        assert!(blob.extra.is_empty() && pkg.extra.is_empty());

        // A null version is version 0: stale, not corrupt.
        let stale: BlobInfo = serde_json::from_str(r#"{"SchemaVersion":null}"#).unwrap();
        assert_eq!(stale.schema_version, 0);
        assert!(!stale.is_current());
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let blob: BlobInfo =
            serde_json::from_str(r#"{"Digest":"sha256:aa","X":1,"Digest":"sha256:bb","X":2}"#)
                .unwrap();
        assert_eq!(blob.digest, "sha256:bb");
        assert_eq!(blob.extra["X"], 2);
    }

    #[test]
    fn decodes_from_a_json_value_too() {
        let value = serde_json::from_str::<Value>(DOC_BLOB).unwrap();
        let blob: BlobInfo = serde_json::from_value(value).unwrap();
        assert_eq!(blob, serde_json::from_str::<BlobInfo>(DOC_BLOB).unwrap());
        assert_eq!(blob.package_infos[0].packages[0].name, "alpine-baselayout");
    }

    #[test]
    fn documents_must_be_objects() {
        for json in ["[2]", "2", "\"x\"", "null"] {
            assert!(serde_json::from_str::<BlobInfo>(json).is_err(), "{json}");
            assert!(
                serde_json::from_str::<ArtifactInfo>(json).is_err(),
                "{json}"
            );
        }
        let err = serde_json::from_str::<BlobInfo>(r#"{"PackageInfos":[{"Packages":[7]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a package"), "{err}");
        // Keys written with escapes are read like plain ones.
        let blob: BlobInfo = serde_json::from_str(r#"{"Schema\u0056ersion":2}"#).unwrap();
        assert!(blob.is_current() && blob.extra.is_empty());
    }

    #[test]
    fn documented_examples_decode_into_fields() {
        let artifact: ArtifactInfo = serde_json::from_str(DOC_ARTIFACT).unwrap();
        assert!(artifact.is_current());
        assert_eq!(artifact.architecture, "amd64");
        assert_eq!(artifact.os, "linux");
        assert!(artifact.extra.is_empty());

        let blob: BlobInfo = serde_json::from_str(DOC_BLOB).unwrap();
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
