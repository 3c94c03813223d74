//! `trivy.scanner.v1`: the scan service's messages.

use std::collections::HashMap;

use super::{
    common::{
        CryptoAsset, CustomResource, DetectedLicense, DetectedMisconfiguration, Layer, Os, Package,
        SecretFinding, Vulnerability,
    },
    json::json_message,
};

/// `Scan`'s request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanRequest {
    /// The image name or archive path, for result targets.
    #[prost(string, tag = "1")]
    pub target: String,
    /// The artifact's cache ID.
    #[prost(string, tag = "2")]
    pub artifact_id: String,
    /// The layers' cache IDs, bottom first.
    #[prost(string, repeated, tag = "3")]
    pub blob_ids: Vec<String>,
    /// What to report.
    #[prost(message, optional, tag = "4")]
    pub options: Option<ScanOptions>,
}
json_message!(ScanRequest {
    target,
    artifact_id,
    blob_ids,
    options
});

/// A list of license names.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Licenses {
    /// The names.
    #[prost(string, repeated, tag = "1")]
    pub names: Vec<String>,
}
json_message!(Licenses { names });

/// What a scan reports.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanOptions {
    /// `os`, `library`.
    #[prost(string, repeated, tag = "1")]
    pub pkg_types: Vec<String>,
    /// `vuln`, `secret`, `license`, `sbom`, `misconfig`, ….
    #[prost(string, repeated, tag = "2")]
    pub scanners: Vec<String>,
    /// License names by category (`forbidden`, `notice`, …).
    #[prost(map = "string, message", tag = "4")]
    pub license_categories: HashMap<String, Licenses>,
    /// Report development dependencies.
    #[prost(bool, tag = "5")]
    pub include_dev_deps: bool,
    /// Package relationships to report (`root`, `direct`, …).
    #[prost(string, repeated, tag = "6")]
    pub pkg_relationships: Vec<String>,
    /// Distribution that overrides the detected OS.
    #[prost(message, optional, tag = "7")]
    pub distro: Option<Os>,
    /// Vulnerability severity sources.
    #[prost(string, repeated, tag = "8")]
    pub vuln_severity_sources: Vec<String>,
    /// Report license files too.
    #[prost(bool, tag = "9")]
    pub license_full: bool,
}
json_message!(ScanOptions {
    pkg_types,
    scanners,
    license_categories,
    include_dev_deps,
    pkg_relationships,
    distro,
    vuln_severity_sources,
    license_full,
});

/// `Scan`'s response.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanResponse {
    /// The image's operating system.
    #[prost(message, optional, tag = "1")]
    pub os: Option<Os>,
    /// The results.
    #[prost(message, repeated, tag = "3")]
    pub results: Vec<ScanResult>,
    /// The image's layers, bottom first.
    #[prost(message, repeated, tag = "4")]
    pub layers: Vec<Layer>,
}
json_message!(ScanResponse {
    os,
    results,
    layers
});

/// One result (`trivy.scanner.v1.Result`): a target and what was found in it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScanResult {
    /// What was scanned, e.g. `app.tar (alpine 3.20.3)`, `Node.js`, a file path.
    #[prost(string, tag = "1")]
    pub target: String,
    /// Vulnerabilities (never any from this server).
    #[prost(message, repeated, tag = "2")]
    pub vulnerabilities: Vec<Vulnerability>,
    /// Misconfigurations.
    #[prost(message, repeated, tag = "4")]
    pub misconfigurations: Vec<DetectedMisconfiguration>,
    /// `os-pkgs`, `lang-pkgs`, `secret`, `license`, `license-file`, `config`, `custom`.
    #[prost(string, tag = "6")]
    pub class: String,
    /// OS family or application type.
    #[prost(string, tag = "3")]
    pub r#type: String,
    /// Packages.
    #[prost(message, repeated, tag = "5")]
    pub packages: Vec<Package>,
    /// Custom analyser results.
    #[prost(message, repeated, tag = "7")]
    pub custom_resources: Vec<CustomResource>,
    /// Secrets.
    #[prost(message, repeated, tag = "8")]
    pub secrets: Vec<SecretFinding>,
    /// Licenses.
    #[prost(message, repeated, tag = "9")]
    pub licenses: Vec<DetectedLicense>,
    /// Cryptographic assets.
    #[prost(message, repeated, tag = "10")]
    pub crypto_assets: Vec<CryptoAsset>,
}
json_message!(ScanResult {
    target,
    vulnerabilities,
    misconfigurations,
    class,
    r#type,
    packages,
    custom_resources,
    secrets,
    licenses,
    crypto_assets,
});
