//! `trivy.cache.v1`: the cache service's messages.

use prost_types::Timestamp;

use super::{
    common::{
        Application, BuildInfo, CryptoAsset, CustomResource, LicenseFile, Misconfiguration, Os,
        Package, PackageInfo, Repository, Secret,
    },
    json::json_message,
};

/// An image record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ArtifactInfo {
    /// Document version (1).
    #[prost(int32, tag = "1")]
    pub schema_version: i32,
    /// CPU architecture.
    #[prost(string, tag = "2")]
    pub architecture: String,
    /// Creation time of the image.
    #[prost(message, optional, tag = "3")]
    pub created: Option<Timestamp>,
    /// Docker version that built it.
    #[prost(string, tag = "4")]
    pub docker_version: String,
    /// Operating system, e.g. `linux`.
    #[prost(string, tag = "5")]
    pub os: String,
    /// Packages recorded in the image history.
    #[prost(message, repeated, tag = "6")]
    pub history_packages: Vec<Package>,
    /// Secrets in the image config.
    #[prost(message, optional, tag = "7")]
    pub secret: Option<Secret>,
}
json_message!(ArtifactInfo {
    schema_version,
    architecture,
    created,
    docker_version,
    os,
    history_packages,
    secret,
});

/// `PutArtifact`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutArtifactRequest {
    /// The artifact's cache ID.
    #[prost(string, tag = "1")]
    pub artifact_id: String,
    /// The record.
    #[prost(message, optional, tag = "2")]
    pub artifact_info: Option<ArtifactInfo>,
}
json_message!(PutArtifactRequest {
    artifact_id,
    artifact_info
});

/// One layer's analysis result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlobInfo {
    /// Document version (2).
    #[prost(int32, tag = "1")]
    pub schema_version: i32,
    /// The operating system found.
    #[prost(message, optional, tag = "2")]
    pub os: Option<Os>,
    /// The package repository found.
    #[prost(message, optional, tag = "11")]
    pub repository: Option<Repository>,
    /// OS package databases.
    #[prost(message, repeated, tag = "3")]
    pub package_infos: Vec<PackageInfo>,
    /// Language packages.
    #[prost(message, repeated, tag = "4")]
    pub applications: Vec<Application>,
    /// Configuration checks.
    #[prost(message, repeated, tag = "9")]
    pub misconfigurations: Vec<Misconfiguration>,
    /// Directories the layer made opaque.
    #[prost(string, repeated, tag = "5")]
    pub opaque_dirs: Vec<String>,
    /// Files the layer deleted.
    #[prost(string, repeated, tag = "6")]
    pub whiteout_files: Vec<String>,
    /// Stored digest of the layer.
    #[prost(string, tag = "7")]
    pub digest: String,
    /// Uncompressed digest of the layer.
    #[prost(string, tag = "8")]
    pub diff_id: String,
    /// Custom analyser results.
    #[prost(message, repeated, tag = "10")]
    pub custom_resources: Vec<CustomResource>,
    /// Secrets found.
    #[prost(message, repeated, tag = "12")]
    pub secrets: Vec<Secret>,
    /// License files found.
    #[prost(message, repeated, tag = "13")]
    pub licenses: Vec<LicenseFile>,
    /// Size of the layer.
    #[prost(int64, tag = "14")]
    pub size: i64,
    /// The build instruction that created it.
    #[prost(string, tag = "15")]
    pub created_by: String,
    /// Red Hat build information.
    #[prost(message, optional, tag = "16")]
    pub build_info: Option<BuildInfo>,
    /// Cryptographic assets found.
    #[prost(message, repeated, tag = "17")]
    pub crypto_assets: Vec<CryptoAsset>,
}
json_message!(BlobInfo {
    schema_version,
    os,
    repository,
    package_infos,
    applications,
    misconfigurations,
    opaque_dirs,
    whiteout_files,
    digest,
    diff_id,
    custom_resources,
    secrets,
    licenses,
    size,
    created_by,
    build_info,
    crypto_assets,
});

/// `PutBlob`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutBlobRequest {
    /// The blob's cache ID (named `diff_id` in the protocol, but it is the cache key).
    #[prost(string, tag = "1")]
    pub diff_id: String,
    /// The result.
    #[prost(message, optional, tag = "3")]
    pub blob_info: Option<BlobInfo>,
}
json_message!(PutBlobRequest { diff_id, blob_info });

/// `MissingBlobs`' request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MissingBlobsRequest {
    /// The artifact's cache ID.
    #[prost(string, tag = "1")]
    pub artifact_id: String,
    /// The blobs' cache IDs.
    #[prost(string, repeated, tag = "2")]
    pub blob_ids: Vec<String>,
}
json_message!(MissingBlobsRequest {
    artifact_id,
    blob_ids
});

/// `MissingBlobs`' response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MissingBlobsResponse {
    /// The artifact record must be (re)written.
    #[prost(bool, tag = "1")]
    pub missing_artifact: bool,
    /// The blobs that must be (re)analysed, in request order.
    #[prost(string, repeated, tag = "2")]
    pub missing_blob_ids: Vec<String>,
}
json_message!(MissingBlobsResponse {
    missing_artifact,
    missing_blob_ids
});

/// `DeleteBlobs`' request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteBlobsRequest {
    /// The blobs' cache IDs.
    #[prost(string, repeated, tag = "1")]
    pub blob_ids: Vec<String>,
}
json_message!(DeleteBlobsRequest { blob_ids });

/// `google.protobuf.Empty`: the answer of the put and delete methods.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}
json_message!(Empty {});
