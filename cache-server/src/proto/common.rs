//! `trivy.common`: the messages both services share (packages, layers, findings).

use std::collections::HashMap;

use prost_types::{Timestamp, Value};

use super::json::{json_message, proto_enum};

/// An operating system.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Os {
    /// Distribution family, e.g. `alpine`.
    #[prost(string, tag = "1")]
    pub family: String,
    /// Release, e.g. `3.20.3`.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Past its end of life.
    #[prost(bool, tag = "3")]
    pub eosl: bool,
    /// Under an extended support programme (e.g. Ubuntu ESM).
    #[prost(bool, tag = "4")]
    pub extended: bool,
    /// The third party that rebuilt the OS packages, if any.
    #[prost(string, tag = "5")]
    pub supplier: String,
}
json_message!(Os {
    family,
    name,
    eosl,
    extended,
    supplier
});

/// A package repository.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Repository {
    /// Repository family, e.g. `alpine`.
    #[prost(string, tag = "1")]
    pub family: String,
    /// Repository release, e.g. `3.20`.
    #[prost(string, tag = "2")]
    pub release: String,
}
json_message!(Repository { family, release });

/// The packages of one OS package database.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackageInfo {
    /// Path of the database, e.g. `lib/apk/db/installed`.
    #[prost(string, tag = "1")]
    pub file_path: String,
    /// Its packages.
    #[prost(message, repeated, tag = "2")]
    pub packages: Vec<Package>,
}
json_message!(PackageInfo {
    file_path,
    packages
});

/// The language packages of one lock file or package directory.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Application {
    /// Application type, e.g. `npm`, `node-pkg`, `python-pkg`.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Path of the lock file (empty for individual package files).
    #[prost(string, tag = "2")]
    pub file_path: String,
    /// Its packages.
    #[prost(message, repeated, tag = "3")]
    pub packages: Vec<Package>,
}
json_message!(Application {
    r#type,
    file_path,
    packages
});

/// A package (OS or language).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Package {
    /// Package ID, e.g. `musl@1.2.5-r0`.
    #[prost(string, tag = "13")]
    pub id: String,
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Version.
    #[prost(string, tag = "2")]
    pub version: String,
    /// Release.
    #[prost(string, tag = "3")]
    pub release: String,
    /// Epoch.
    #[prost(int32, tag = "4")]
    pub epoch: i32,
    /// PURL, UID and BOM reference.
    #[prost(message, optional, tag = "19")]
    pub identifier: Option<PkgIdentifier>,
    /// CPU architecture.
    #[prost(string, tag = "5")]
    pub arch: String,
    /// Source package name.
    #[prost(string, tag = "6")]
    pub src_name: String,
    /// Source package version.
    #[prost(string, tag = "7")]
    pub src_version: String,
    /// Source package release.
    #[prost(string, tag = "8")]
    pub src_release: String,
    /// Source package epoch.
    #[prost(int32, tag = "9")]
    pub src_epoch: i32,
    /// License names.
    #[prost(string, repeated, tag = "15")]
    pub licenses: Vec<String>,
    /// Lines of the lock file that declare it.
    #[prost(message, repeated, tag = "20")]
    pub locations: Vec<Location>,
    /// The layer that installed it.
    #[prost(message, optional, tag = "11")]
    pub layer: Option<Layer>,
    /// The file it was found in (language packages).
    #[prost(string, tag = "12")]
    pub file_path: String,
    /// IDs of the packages it depends on.
    #[prost(string, repeated, tag = "14")]
    pub depends_on: Vec<String>,
    /// Checksum, e.g. `sha1:…`.
    #[prost(string, tag = "16")]
    pub digest: String,
    /// A development dependency.
    #[prost(bool, tag = "17")]
    pub dev: bool,
    /// An indirect dependency (superseded by `relationship`).
    #[prost(bool, tag = "18")]
    pub indirect: bool,
    /// Maintainer.
    #[prost(string, tag = "21")]
    pub maintainer: String,
    /// 0 unknown, 1 root, 2 workspace, 3 direct, 4 indirect.
    #[prost(int32, tag = "22")]
    pub relationship: i32,
    /// The analyser that found it, e.g. `apk`.
    #[prost(string, tag = "23")]
    pub analyzed_by: String,
    /// Where the package was distributed from.
    #[prost(message, optional, tag = "24")]
    pub repository: Option<PackageRepository>,
    /// Red Hat module label.
    #[prost(string, tag = "25")]
    pub modularitylabel: String,
    /// Red Hat build information.
    #[prost(message, optional, tag = "26")]
    pub build_info: Option<BuildInfo>,
    /// Files the package installed.
    #[prost(string, repeated, tag = "27")]
    pub installed_files: Vec<String>,
}
json_message!(Package {
    id,
    name,
    version,
    release,
    epoch,
    identifier,
    arch,
    src_name,
    src_version,
    src_release,
    src_epoch,
    licenses,
    locations,
    layer,
    file_path,
    depends_on,
    digest,
    dev,
    indirect,
    maintainer,
    relationship,
    analyzed_by,
    repository,
    modularitylabel,
    build_info,
    installed_files,
});

/// Where a package was distributed from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PackageRepository {
    /// Repository class, e.g. `official`.
    #[prost(string, tag = "1")]
    pub class: String,
}
json_message!(PackageRepository { class });

/// A package's identifiers.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PkgIdentifier {
    /// Package URL.
    #[prost(string, tag = "1")]
    pub purl: String,
    /// CycloneDX BOM reference.
    #[prost(string, tag = "2")]
    pub bom_ref: String,
    /// The reference's own package hash.
    #[prost(string, tag = "3")]
    pub uid: String,
}
json_message!(PkgIdentifier { purl, bom_ref, uid });

/// A line range in a file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Location {
    /// First line.
    #[prost(int32, tag = "1")]
    pub start_line: i32,
    /// Last line.
    #[prost(int32, tag = "2")]
    pub end_line: i32,
}
json_message!(Location {
    start_line,
    end_line
});

/// Red Hat build information of a layer or package.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BuildInfo {
    /// Content sets.
    #[prost(string, repeated, tag = "1")]
    pub content_sets: Vec<String>,
    /// Name-version-release.
    #[prost(string, tag = "2")]
    pub nvr: String,
    /// Architecture.
    #[prost(string, tag = "3")]
    pub arch: String,
}
json_message!(BuildInfo {
    content_sets,
    nvr,
    arch
});

/// The checks run on one configuration file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Misconfiguration {
    /// Configuration type, e.g. `dockerfile`.
    #[prost(string, tag = "1")]
    pub file_type: String,
    /// Path of the file.
    #[prost(string, tag = "2")]
    pub file_path: String,
    /// Checks that passed.
    #[prost(message, repeated, tag = "3")]
    pub successes: Vec<MisconfResult>,
    /// Checks that warned.
    #[prost(message, repeated, tag = "4")]
    pub warnings: Vec<MisconfResult>,
    /// Checks that failed.
    #[prost(message, repeated, tag = "5")]
    pub failures: Vec<MisconfResult>,
}
json_message!(Misconfiguration {
    file_type,
    file_path,
    successes,
    warnings,
    failures
});

/// The outcome of one check.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MisconfResult {
    /// Policy namespace.
    #[prost(string, tag = "1")]
    pub namespace: String,
    /// Message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// The check's metadata.
    #[prost(message, optional, tag = "7")]
    pub policy_metadata: Option<PolicyMetadata>,
    /// Where the cause is.
    #[prost(message, optional, tag = "8")]
    pub cause_metadata: Option<CauseMetadata>,
    /// The query.
    #[prost(string, tag = "9")]
    pub query: String,
}
json_message!(MisconfResult {
    namespace,
    message,
    policy_metadata,
    cause_metadata,
    query
});

/// A check's metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PolicyMetadata {
    /// Check ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Advisory ID.
    #[prost(string, tag = "2")]
    pub adv_id: String,
    /// Check type.
    #[prost(string, tag = "3")]
    pub r#type: String,
    /// Title.
    #[prost(string, tag = "4")]
    pub title: String,
    /// Description.
    #[prost(string, tag = "5")]
    pub description: String,
    /// Severity name.
    #[prost(string, tag = "6")]
    pub severity: String,
    /// How to fix it.
    #[prost(string, tag = "7")]
    pub recommended_actions: String,
    /// References.
    #[prost(string, repeated, tag = "8")]
    pub references: Vec<String>,
    /// Other IDs.
    #[prost(string, repeated, tag = "9")]
    pub aliases: Vec<String>,
}
json_message!(PolicyMetadata {
    id,
    adv_id,
    r#type,
    title,
    description,
    severity,
    recommended_actions,
    references,
    aliases,
});

/// A detected misconfiguration in a scan result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DetectedMisconfiguration {
    /// Check type.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Check ID.
    #[prost(string, tag = "2")]
    pub id: String,
    /// Title.
    #[prost(string, tag = "3")]
    pub title: String,
    /// Description.
    #[prost(string, tag = "4")]
    pub description: String,
    /// Message.
    #[prost(string, tag = "5")]
    pub message: String,
    /// Policy namespace.
    #[prost(string, tag = "6")]
    pub namespace: String,
    /// How to fix it.
    #[prost(string, tag = "7")]
    pub resolution: String,
    /// Severity.
    #[prost(enumeration = "Severity", tag = "8")]
    pub severity: i32,
    /// Primary URL.
    #[prost(string, tag = "9")]
    pub primary_url: String,
    /// References.
    #[prost(string, repeated, tag = "10")]
    pub references: Vec<String>,
    /// `PASS` or `FAIL`.
    #[prost(string, tag = "11")]
    pub status: String,
    /// The layer of the file.
    #[prost(message, optional, tag = "12")]
    pub layer: Option<Layer>,
    /// Where the cause is.
    #[prost(message, optional, tag = "13")]
    pub cause_metadata: Option<CauseMetadata>,
    /// Advisory ID (deprecated).
    #[prost(string, tag = "14")]
    pub avd_id: String,
    /// The query.
    #[prost(string, tag = "15")]
    pub query: String,
    /// Other IDs.
    #[prost(string, repeated, tag = "16")]
    pub aliases: Vec<String>,
}
json_message!(DetectedMisconfiguration {
    r#type,
    id,
    title,
    description,
    message,
    namespace,
    resolution,
    severity: enum Severity,
    primary_url,
    references,
    status,
    layer,
    cause_metadata,
    avd_id,
    query,
    aliases,
});

/// A detected vulnerability. This server never reports any (it has no vulnerability
/// database); the message is here so that results decode and encode completely.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Vulnerability {
    /// Vulnerability ID, e.g. `CVE-…`.
    #[prost(string, tag = "1")]
    pub vulnerability_id: String,
    /// Package name.
    #[prost(string, tag = "2")]
    pub pkg_name: String,
    /// Installed version.
    #[prost(string, tag = "3")]
    pub installed_version: String,
    /// Fixed version.
    #[prost(string, tag = "4")]
    pub fixed_version: String,
    /// Title.
    #[prost(string, tag = "5")]
    pub title: String,
    /// Description.
    #[prost(string, tag = "6")]
    pub description: String,
    /// Severity.
    #[prost(enumeration = "Severity", tag = "7")]
    pub severity: i32,
    /// References.
    #[prost(string, repeated, tag = "8")]
    pub references: Vec<String>,
    /// The package's identifiers.
    #[prost(message, optional, tag = "25")]
    pub pkg_identifier: Option<PkgIdentifier>,
    /// The layer of the package.
    #[prost(message, optional, tag = "10")]
    pub layer: Option<Layer>,
    /// Where the severity comes from.
    #[prost(string, tag = "11")]
    pub severity_source: String,
    /// CVSS scores by source.
    #[prost(map = "string, message", tag = "12")]
    pub cvss: HashMap<String, Cvss>,
    /// CWE IDs.
    #[prost(string, repeated, tag = "13")]
    pub cwe_ids: Vec<String>,
    /// Primary URL.
    #[prost(string, tag = "14")]
    pub primary_url: String,
    /// Publication time.
    #[prost(message, optional, tag = "15")]
    pub published_date: Option<Timestamp>,
    /// Last modification time.
    #[prost(message, optional, tag = "16")]
    pub last_modified_date: Option<Timestamp>,
    /// Custom advisory data.
    #[prost(message, optional, tag = "17")]
    pub custom_advisory_data: Option<Value>,
    /// Custom vulnerability data.
    #[prost(message, optional, tag = "18")]
    pub custom_vuln_data: Option<Value>,
    /// Vendor IDs.
    #[prost(string, repeated, tag = "19")]
    pub vendor_ids: Vec<String>,
    /// Data source.
    #[prost(message, optional, tag = "20")]
    pub data_source: Option<DataSource>,
    /// Severity by vendor.
    #[prost(map = "string, enumeration(Severity)", tag = "21")]
    pub vendor_severity: HashMap<String, i32>,
    /// Package path.
    #[prost(string, tag = "22")]
    pub pkg_path: String,
    /// Package ID.
    #[prost(string, tag = "23")]
    pub pkg_id: String,
    /// Fix status.
    #[prost(int32, tag = "24")]
    pub status: i32,
}
json_message!(Vulnerability {
    vulnerability_id,
    pkg_name,
    installed_version,
    fixed_version,
    title,
    description,
    severity: enum Severity,
    references,
    pkg_identifier,
    layer,
    severity_source,
    cvss,
    cwe_ids,
    primary_url,
    published_date,
    last_modified_date,
    custom_advisory_data,
    custom_vuln_data,
    vendor_ids,
    data_source,
    vendor_severity: enum_map Severity,
    pkg_path,
    pkg_id,
    status,
});

/// A vulnerability data source.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DataSource {
    /// Source ID.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// URL.
    #[prost(string, tag = "3")]
    pub url: String,
}
json_message!(DataSource { id, name, url });

/// An image layer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Layer {
    /// Stored (compressed) digest.
    #[prost(string, tag = "1")]
    pub digest: String,
    /// Uncompressed digest.
    #[prost(string, tag = "2")]
    pub diff_id: String,
    /// The build instruction that created it.
    #[prost(string, tag = "3")]
    pub created_by: String,
    /// Size in bytes.
    #[prost(int64, tag = "4")]
    pub size: i64,
}
json_message!(Layer {
    digest,
    diff_id,
    created_by,
    size
});

/// Where a finding's cause is.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CauseMetadata {
    /// Resource.
    #[prost(string, tag = "1")]
    pub resource: String,
    /// Provider.
    #[prost(string, tag = "2")]
    pub provider: String,
    /// Service.
    #[prost(string, tag = "3")]
    pub service: String,
    /// First line.
    #[prost(int32, tag = "4")]
    pub start_line: i32,
    /// Last line.
    #[prost(int32, tag = "5")]
    pub end_line: i32,
    /// The code around it.
    #[prost(message, optional, tag = "6")]
    pub code: Option<Code>,
    /// The cause as rendered.
    #[prost(message, optional, tag = "7")]
    pub rendered_cause: Option<RenderedCause>,
}
json_message!(CauseMetadata {
    resource,
    provider,
    service,
    start_line,
    end_line,
    code,
    rendered_cause,
});

/// A severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Severity {
    /// Unknown.
    Unknown = 0,
    /// Low.
    Low = 1,
    /// Medium.
    Medium = 2,
    /// High.
    High = 3,
    /// Critical.
    Critical = 4,
}
proto_enum!(Severity {
    Unknown = "UNKNOWN",
    Low = "LOW",
    Medium = "MEDIUM",
    High = "HIGH",
    Critical = "CRITICAL",
});

/// CVSS vectors and scores.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Cvss {
    /// CVSS v2 vector.
    #[prost(string, tag = "1")]
    pub v2_vector: String,
    /// CVSS v3 vector.
    #[prost(string, tag = "2")]
    pub v3_vector: String,
    /// CVSS v2 score.
    #[prost(double, tag = "3")]
    pub v2_score: f64,
    /// CVSS v3 score.
    #[prost(double, tag = "4")]
    pub v3_score: f64,
    /// CVSS v4.0 vector.
    #[prost(string, tag = "5")]
    pub v40_vector: String,
    /// CVSS v4.0 score.
    #[prost(double, tag = "6")]
    pub v40_score: f64,
}
json_message!(Cvss {
    v2_vector,
    v3_vector,
    v2_score,
    v3_score,
    v40_vector,
    v40_score
});

/// A custom analyser's result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CustomResource {
    /// Resource type.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// Path of the file.
    #[prost(string, tag = "2")]
    pub file_path: String,
    /// Its layer.
    #[prost(message, optional, tag = "3")]
    pub layer: Option<Layer>,
    /// Any data.
    #[prost(message, optional, tag = "4")]
    pub data: Option<Value>,
}
json_message!(CustomResource {
    r#type,
    file_path,
    layer,
    data
});

/// One line of code around a finding.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Line {
    /// Line number.
    #[prost(int32, tag = "1")]
    pub number: i32,
    /// Content.
    #[prost(string, tag = "2")]
    pub content: String,
    /// Part of the cause.
    #[prost(bool, tag = "3")]
    pub is_cause: bool,
    /// Annotation.
    #[prost(string, tag = "4")]
    pub annotation: String,
    /// Cut short.
    #[prost(bool, tag = "5")]
    pub truncated: bool,
    /// Highlighted content.
    #[prost(string, tag = "6")]
    pub highlighted: String,
    /// First line of the cause.
    #[prost(bool, tag = "7")]
    pub first_cause: bool,
    /// Last line of the cause.
    #[prost(bool, tag = "8")]
    pub last_cause: bool,
}
json_message!(Line {
    number,
    content,
    is_cause,
    annotation,
    truncated,
    highlighted,
    first_cause,
    last_cause,
});

/// Lines of code.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Code {
    /// The lines.
    #[prost(message, repeated, tag = "1")]
    pub lines: Vec<Line>,
}
json_message!(Code { lines });

/// A cause as rendered.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RenderedCause {
    /// Plain text.
    #[prost(string, tag = "1")]
    pub raw: String,
    /// Highlighted text.
    #[prost(string, tag = "2")]
    pub highlighted: String,
}
json_message!(RenderedCause { raw, highlighted });

/// One secret found in a file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SecretFinding {
    /// Rule ID, e.g. `github-pat`.
    #[prost(string, tag = "1")]
    pub rule_id: String,
    /// Rule category.
    #[prost(string, tag = "2")]
    pub category: String,
    /// Severity name.
    #[prost(string, tag = "3")]
    pub severity: String,
    /// Title.
    #[prost(string, tag = "4")]
    pub title: String,
    /// First line.
    #[prost(int32, tag = "5")]
    pub start_line: i32,
    /// Last line.
    #[prost(int32, tag = "6")]
    pub end_line: i32,
    /// The code around it.
    #[prost(message, optional, tag = "7")]
    pub code: Option<Code>,
    /// The matched text (masked).
    #[prost(string, tag = "8")]
    pub r#match: String,
    /// The layer of the file.
    #[prost(message, optional, tag = "10")]
    pub layer: Option<Layer>,
    /// Byte offset in the file.
    #[prost(int32, tag = "11")]
    pub offset: i32,
}
json_message!(SecretFinding {
    rule_id,
    category,
    severity,
    title,
    start_line,
    end_line,
    code,
    r#match,
    layer,
    offset,
});

/// The secrets found in one file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Secret {
    /// Path of the file.
    #[prost(string, tag = "1")]
    pub filepath: String,
    /// The findings.
    #[prost(message, repeated, tag = "2")]
    pub findings: Vec<SecretFinding>,
}
json_message!(Secret { filepath, findings });

/// A license in a scan result.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DetectedLicense {
    /// Severity of its category.
    #[prost(enumeration = "Severity", tag = "1")]
    pub severity: i32,
    /// Category.
    #[prost(enumeration = "LicenseCategoryEnum", tag = "2")]
    pub category: i32,
    /// The package that carries it.
    #[prost(string, tag = "3")]
    pub pkg_name: String,
    /// The file it was found in.
    #[prost(string, tag = "4")]
    pub file_path: String,
    /// License name.
    #[prost(string, tag = "5")]
    pub name: String,
    /// Confidence, 0–1.
    #[prost(float, tag = "6")]
    pub confidence: f32,
    /// Link to the license text.
    #[prost(string, tag = "7")]
    pub link: String,
    /// License text, for a license given as text.
    #[prost(string, tag = "8")]
    pub text: String,
}
json_message!(DetectedLicense {
    severity: enum Severity,
    category: enum LicenseCategoryEnum,
    pkg_name,
    file_path,
    name,
    confidence,
    link,
    text,
});

/// The licenses found in one file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LicenseFile {
    /// How they were found.
    #[prost(enumeration = "LicenseTypeEnum", tag = "1")]
    pub license_type: i32,
    /// Path of the file.
    #[prost(string, tag = "2")]
    pub file_path: String,
    /// The package it belongs to (dpkg copyright files).
    #[prost(string, tag = "3")]
    pub pkg_name: String,
    /// The findings (the field's name is spelled so in the protocol).
    #[prost(message, repeated, tag = "4")]
    pub fingings: Vec<LicenseFinding>,
    /// The layer of the file.
    #[prost(message, optional, tag = "5")]
    pub layer: Option<Layer>,
}
json_message!(LicenseFile {
    license_type: enum LicenseTypeEnum,
    file_path,
    pkg_name,
    fingings,
    layer,
});

/// One license found in a file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LicenseFinding {
    /// Category.
    #[prost(enumeration = "LicenseCategoryEnum", tag = "1")]
    pub category: i32,
    /// License name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Confidence, 0–1.
    #[prost(float, tag = "3")]
    pub confidence: f32,
    /// Link to the license text.
    #[prost(string, tag = "4")]
    pub link: String,
}
json_message!(LicenseFinding { category: enum LicenseCategoryEnum, name, confidence, link });

/// `trivy.common.LicenseCategory.Enum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LicenseCategoryEnum {
    /// Not given.
    Unspecified = 0,
    /// `forbidden`.
    Forbidden = 1,
    /// `restricted`.
    Restricted = 2,
    /// `reciprocal`.
    Reciprocal = 3,
    /// `notice`.
    Notice = 4,
    /// `permissive`.
    Permissive = 5,
    /// `unencumbered`.
    Unencumbered = 6,
    /// `unknown`.
    Unknown = 7,
}
proto_enum!(LicenseCategoryEnum {
    Unspecified = "UNSPECIFIED",
    Forbidden = "FORBIDDEN",
    Restricted = "RESTRICTED",
    Reciprocal = "RECIPROCAL",
    Notice = "NOTICE",
    Permissive = "PERMISSIVE",
    Unencumbered = "UNENCUMBERED",
    Unknown = "UNKNOWN",
});

/// `trivy.common.LicenseType.Enum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum LicenseTypeEnum {
    /// Not given.
    Unspecified = 0,
    /// A dpkg copyright file.
    Dpkg = 1,
    /// A file header.
    Header = 2,
    /// A license file.
    LicenseFile = 3,
}
proto_enum!(LicenseTypeEnum {
    Unspecified = "UNSPECIFIED",
    Dpkg = "DPKG",
    Header = "HEADER",
    LicenseFile = "LICENSE_FILE",
});

/// A cryptographic asset (certificate, key, algorithm).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoAsset {
    /// `certificate`, `key` or `algorithm`.
    #[prost(string, tag = "1")]
    pub kind: String,
    /// Key type.
    #[prost(string, tag = "2")]
    pub key_type: String,
    /// Identity.
    #[prost(message, optional, tag = "3")]
    pub identity: Option<CryptoIdentity>,
    /// Name.
    #[prost(string, tag = "4")]
    pub name: String,
    /// Certificate details.
    #[prost(message, optional, tag = "5")]
    pub certificate: Option<CryptoCertificate>,
    /// Key details.
    #[prost(message, optional, tag = "6")]
    pub key: Option<CryptoKey>,
    /// Algorithm details.
    #[prost(message, optional, tag = "7")]
    pub algorithm: Option<CryptoAlgorithm>,
    /// Related assets.
    #[prost(message, repeated, tag = "8")]
    pub relationships: Vec<CryptoRelationship>,
    /// Path of the file.
    #[prost(string, tag = "9")]
    pub file_path: String,
    /// Format.
    #[prost(string, tag = "10")]
    pub format: String,
    /// Encoding (`PEM`, `DER`).
    #[prost(string, tag = "11")]
    pub encoding: String,
    /// The layer of the file.
    #[prost(message, optional, tag = "12")]
    pub layer: Option<Layer>,
}
json_message!(CryptoAsset {
    kind,
    key_type,
    identity,
    name,
    certificate,
    key,
    algorithm,
    relationships,
    file_path,
    format,
    encoding,
    layer,
});

/// A cryptographic asset's identity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoIdentity {
    /// Method, e.g. `sha256`.
    #[prost(string, tag = "1")]
    pub method: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
    /// Parameters.
    #[prost(string, tag = "3")]
    pub parameters: String,
}
json_message!(CryptoIdentity {
    method,
    value,
    parameters
});

/// Certificate details.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoCertificate {
    /// Subject.
    #[prost(string, tag = "1")]
    pub subject: String,
    /// Issuer.
    #[prost(string, tag = "2")]
    pub issuer: String,
    /// Serial number.
    #[prost(string, tag = "3")]
    pub serial_number: String,
    /// Start of validity.
    #[prost(message, optional, tag = "4")]
    pub not_before: Option<Timestamp>,
    /// End of validity.
    #[prost(message, optional, tag = "5")]
    pub not_after: Option<Timestamp>,
    /// Format.
    #[prost(string, tag = "6")]
    pub format: String,
    /// Key usages.
    #[prost(string, repeated, tag = "7")]
    pub key_usage: Vec<String>,
    /// Extended key usages.
    #[prost(string, repeated, tag = "8")]
    pub extended_key_usage: Vec<String>,
    /// DNS names.
    #[prost(string, repeated, tag = "9")]
    pub dns_names: Vec<String>,
    /// E-mail addresses.
    #[prost(string, repeated, tag = "10")]
    pub email_addresses: Vec<String>,
    /// IP addresses.
    #[prost(string, repeated, tag = "11")]
    pub ip_addresses: Vec<String>,
    /// URIs.
    #[prost(string, repeated, tag = "12")]
    pub uris: Vec<String>,
    /// Basic constraints are valid.
    #[prost(bool, tag = "13")]
    pub basic_constraints_valid: bool,
    /// A CA certificate.
    #[prost(bool, tag = "14")]
    pub is_ca: bool,
    /// Maximum path length.
    #[prost(int64, tag = "15")]
    pub max_path_len: i64,
    /// The maximum path length is really zero.
    #[prost(bool, tag = "16")]
    pub max_path_len_zero: bool,
}
json_message!(CryptoCertificate {
    subject,
    issuer,
    serial_number,
    not_before,
    not_after,
    format,
    key_usage,
    extended_key_usage,
    dns_names,
    email_addresses,
    ip_addresses,
    uris,
    basic_constraints_valid,
    is_ca,
    max_path_len,
    max_path_len_zero,
});

/// Key details.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoKey {
    /// Size in bits.
    #[prost(int32, tag = "1")]
    pub size: i32,
    /// Curve.
    #[prost(string, tag = "2")]
    pub curve: String,
    /// Encrypted.
    #[prost(bool, tag = "3")]
    pub encrypted: bool,
}
json_message!(CryptoKey {
    size,
    curve,
    encrypted
});

/// Algorithm details.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoAlgorithm {
    /// Family.
    #[prost(string, tag = "1")]
    pub family: String,
    /// Primitive.
    #[prost(string, tag = "2")]
    pub primitive: String,
    /// Classical security level.
    #[prost(int32, tag = "3")]
    pub classical_security_level: i32,
    /// NIST quantum security level.
    #[prost(int32, tag = "4")]
    pub nist_quantum_security_level: i32,
}
json_message!(CryptoAlgorithm {
    family,
    primitive,
    classical_security_level,
    nist_quantum_security_level,
});

/// What identifies a related asset.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoDescriptor {
    /// Kind.
    #[prost(string, tag = "1")]
    pub kind: String,
    /// Key type.
    #[prost(string, tag = "2")]
    pub key_type: String,
    /// Identity.
    #[prost(message, optional, tag = "3")]
    pub identity: Option<CryptoIdentity>,
}
json_message!(CryptoDescriptor {
    kind,
    key_type,
    identity
});

/// A relation to another asset.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CryptoRelationship {
    /// Relation type.
    #[prost(string, tag = "1")]
    pub r#type: String,
    /// The related asset.
    #[prost(message, optional, tag = "2")]
    pub related_asset: Option<CryptoDescriptor>,
}
json_message!(CryptoRelationship {
    r#type,
    related_asset
});
