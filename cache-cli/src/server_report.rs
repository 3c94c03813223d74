//! The report of `scancache image|fs|rootfs|sbom --server`: what the server's `Scan`
//! answered, as JSON shaped like the reference's report (`Results` with `Packages`,
//! `Vulnerabilities`, `Licenses`) or as a table (OS, packages, vulnerabilities).

use std::{collections::BTreeMap, fmt::Write as _, io};

use cache_scan::{TargetSource, Uploaded, UploadedTarget};
use cache_server::{
    convert::category_name,
    proto::{
        common::{self as pb, Severity},
        json::ProtoEnum,
        scanner::{ScanResponse, ScanResult},
    },
};
use serde::Serialize;
use serde_json::Value;

/// The reference's names of a vulnerability's status, by number.
const STATUSES: [&str; 8] = [
    "unknown",
    "not_affected",
    "affected",
    "fixed",
    "under_investigation",
    "will_not_fix",
    "fix_deferred",
    "end_of_life",
];

/// What was uploaded for the server to scan.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    /// An image: its facts from the archive, and what the upload did per layer.
    Image(&'a Uploaded),
    /// A directory or an SBOM: its one result.
    Target(&'a UploadedTarget),
}

/// A scan's report as the server gave it, with what the client knows of the target.
pub struct ServerReport<'a> {
    /// The name the target was scanned under: the input path.
    pub artifact_name: &'a str,
    /// What the upload found and did.
    pub subject: Subject<'a>,
    /// The server's answer.
    pub response: &'a ScanResponse,
    /// Whether vulnerabilities were asked for (the table then shows their count even
    /// when there are none).
    pub vulnerabilities_asked: bool,
}

impl ServerReport<'_> {
    /// Writes the JSON report, pretty-printed, keys in the reference's order.
    pub fn write_json<W: io::Write>(&self, mut out: W) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut out, &self.json_view()).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }

    fn json_view(&self) -> JsonReport<'_> {
        let os = self.response.os.as_ref().filter(|os| !os.family.is_empty());
        let (artifact_type, image_id, diff_ids, repo_tags): (_, &str, &[String], &[String]) =
            match self.subject {
                Subject::Image(up) => (
                    "container_image",
                    up.image_id.as_str(),
                    up.diff_ids.as_slice(),
                    up.repo_tags.as_slice(),
                ),
                Subject::Target(t) => (t.artifact_type.as_str(), "", &[], &[]),
            };
        JsonReport {
            schema_version: cache_scan::REPORT_SCHEMA_VERSION,
            artifact_name: self.artifact_name,
            artifact_type,
            metadata: JsonMetadata {
                os: os.map(|os| JsonOs {
                    family: &os.family,
                    name: &os.name,
                    eosl: os.eosl,
                }),
                image_id,
                diff_ids,
                repo_tags,
            },
            results: self.response.results.iter().map(JsonResult::from).collect(),
        }
    }

    /// The report as a table for a terminal: image, OS, layers, then the packages of each
    /// result, then the vulnerabilities (ID, package, installed and fixed version,
    /// severity, title).
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        match self.subject {
            Subject::Image(up) => {
                let tags = &up.repo_tags;
                let image = if tags.is_empty() {
                    self.artifact_name.to_owned()
                } else {
                    format!("{} ({})", self.artifact_name, tags.join(", "))
                };
                let _ = writeln!(out, "Image     {}", fit(&printable(&image), 70));
                let _ = writeln!(out, "Image ID  {}", short_digest(&up.image_id));
            }
            Subject::Target(_) => {
                let name = printable(self.artifact_name);
                let _ = writeln!(out, "Target    {}", fit(&name, 70));
            }
        }
        let os = self
            .response
            .os
            .as_ref()
            .filter(|os| !os.family.is_empty())
            .map_or_else(
                || "not detected".to_owned(),
                |os| format!("{} {}", os.family, os.name),
            );
        let _ = writeln!(out, "OS        {}", fit(&printable(&os), 70));
        match self.subject {
            Subject::Image(up) => {
                let c = up.layers;
                let _ = writeln!(
                    out,
                    "Layers    {} ({} uploaded, {} already on the server)",
                    c.total, c.analysed, c.cached
                );
            }
            Subject::Target(t) => {
                let how = match t.source {
                    TargetSource::OnServer => "already on the server",
                    TargetSource::LocalCache => "uploaded from the local cache",
                    TargetSource::Analysed => "analysed and uploaded",
                };
                let _ = writeln!(out, "Result    {how}");
            }
        }
        let with_packages: Vec<&ScanResult> = self
            .response
            .results
            .iter()
            .filter(|r| !r.packages.is_empty())
            .collect();
        let total: usize = with_packages.iter().map(|r| r.packages.len()).sum();
        let _ = writeln!(out, "Packages  {total}");
        let vulns: Vec<(&ScanResult, &pb::Vulnerability)> = self
            .response
            .results
            .iter()
            .flat_map(|r| r.vulnerabilities.iter().map(move |v| (r, v)))
            .collect();
        if self.vulnerabilities_asked || !vulns.is_empty() {
            let _ = writeln!(out, "Vulnerabilities  {}", vulns.len());
        }
        for result in with_packages {
            out.push('\n');
            let _ = writeln!(
                out,
                "{} ({})",
                printable(&result.target),
                printable(&result.r#type)
            );
            let rows: Vec<[String; 3]> = result
                .packages
                .iter()
                .map(|p| {
                    [
                        printable(&p.name),
                        printable(&full_version(p)),
                        printable(&short_digest(
                            p.layer.as_ref().map_or("", |l| l.diff_id.as_str()),
                        )),
                    ]
                })
                .collect();
            table(&mut out, ["NAME", "VERSION", "LAYER"], &rows, [29, 28, 20]);
        }
        if !vulns.is_empty() {
            out.push('\n');
            let rows: Vec<[String; 6]> = vulns
                .iter()
                .map(|(_, v)| {
                    [
                        printable(&v.vulnerability_id),
                        printable(&v.pkg_name),
                        printable(&v.installed_version),
                        printable(&v.fixed_version),
                        severity_name(v.severity).to_owned(),
                        printable(&v.title),
                    ]
                })
                .collect();
            table(
                &mut out,
                ["ID", "PACKAGE", "INSTALLED", "FIXED", "SEVERITY", "TITLE"],
                &rows,
                [20, 20, 16, 16, 8, 40],
            );
        }
        out
    }
}

/// Appends a table: a header and rows, each column as wide as its widest cell up to
/// its cap (longer cells cut with `…`), the last column unpadded.
fn table<const N: usize>(
    out: &mut String,
    head: [&str; N],
    rows: &[[String; N]],
    caps: [usize; N],
) {
    let mut widths = [0; N];
    for (i, w) in widths.iter_mut().enumerate() {
        let widest = rows
            .iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0);
        *w = widest.min(caps[i]);
    }
    let line = |cells: [&str; N]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let cell = fit(cell, widths[i]);
            if i + 1 == N {
                l.push_str(&cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
            }
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(head));
    for row in rows {
        let cells: [&str; N] = std::array::from_fn(|i| row[i].as_str());
        let _ = writeln!(out, "{}", line(cells));
    }
}

/// A server-given text with control characters escaped, so it cannot move the cursor
/// or rewrite the terminal.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `s` cut to `width` characters, the last one `…` when cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `sha256:` and the first 12 hex digits.
fn short_digest(d: &str) -> String {
    match d.strip_prefix("sha256:") {
        Some(hex) => format!("sha256:{}", hex.get(..12).unwrap_or(hex)),
        None => d.to_owned(),
    }
}

/// `[epoch:]version[-release]`.
fn full_version(p: &pb::Package) -> String {
    let mut v = String::new();
    if p.epoch != 0 {
        let _ = write!(v, "{}:", p.epoch);
    }
    v.push_str(&p.version);
    if !p.release.is_empty() {
        v.push('-');
        v.push_str(&p.release);
    }
    v
}

fn severity_name(n: i32) -> &'static str {
    Severity::name_of(n).unwrap_or("UNKNOWN")
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonReport<'a> {
    schema_version: u32,
    artifact_name: &'a str,
    artifact_type: &'static str,
    metadata: JsonMetadata<'a>,
    results: Vec<JsonResult>,
}

#[derive(Serialize)]
struct JsonMetadata<'a> {
    #[serde(rename = "OS", skip_serializing_if = "Option::is_none")]
    os: Option<JsonOs<'a>>,
    #[serde(rename = "ImageID", skip_serializing_if = "str::is_empty")]
    image_id: &'a str,
    #[serde(rename = "DiffIDs", skip_serializing_if = "<[_]>::is_empty")]
    diff_ids: &'a [String],
    #[serde(rename = "RepoTags", skip_serializing_if = "<[_]>::is_empty")]
    repo_tags: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonOs<'a> {
    family: &'a str,
    name: &'a str,
    #[serde(rename = "EOSL", skip_serializing_if = "is_false")]
    eosl: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonResult {
    target: String,
    class: String,
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    packages: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    vulnerabilities: Vec<JsonVulnerability>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    licenses: Vec<JsonLicense>,
}

impl From<&ScanResult> for JsonResult {
    fn from(r: &ScanResult) -> Self {
        JsonResult {
            target: r.target.clone(),
            class: r.class.clone(),
            kind: r.r#type.clone(),
            // The document form of a package is the reference's report form of it.
            packages: r
                .packages
                .iter()
                .map(|p| serde_json::to_value(cache_core::Package::from(p.clone())))
                .filter_map(Result::ok)
                .collect(),
            vulnerabilities: r
                .vulnerabilities
                .iter()
                .map(JsonVulnerability::from)
                .collect(),
            licenses: r.licenses.iter().map(JsonLicense::from).collect(),
        }
    }
}

#[derive(Serialize)]
struct JsonVulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    #[serde(rename = "PkgID", skip_serializing_if = "String::is_empty")]
    pkg_id: String,
    #[serde(rename = "PkgName")]
    pkg_name: String,
    #[serde(rename = "PkgPath", skip_serializing_if = "String::is_empty")]
    pkg_path: String,
    #[serde(rename = "PkgIdentifier", skip_serializing_if = "Option::is_none")]
    pkg_identifier: Option<JsonIdentifier>,
    #[serde(rename = "InstalledVersion")]
    installed_version: String,
    #[serde(rename = "FixedVersion", skip_serializing_if = "String::is_empty")]
    fixed_version: String,
    #[serde(rename = "Status", skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(rename = "Layer", skip_serializing_if = "Option::is_none")]
    layer: Option<JsonLayer>,
    #[serde(rename = "SeveritySource", skip_serializing_if = "String::is_empty")]
    severity_source: String,
    #[serde(rename = "PrimaryURL", skip_serializing_if = "String::is_empty")]
    primary_url: String,
    #[serde(rename = "DataSource", skip_serializing_if = "Option::is_none")]
    data_source: Option<JsonDataSource>,
    #[serde(rename = "Title", skip_serializing_if = "String::is_empty")]
    title: String,
    #[serde(rename = "Description", skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(rename = "Severity")]
    severity: &'static str,
    #[serde(rename = "CweIDs", skip_serializing_if = "Vec::is_empty")]
    cwe_ids: Vec<String>,
    #[serde(rename = "VendorSeverity", skip_serializing_if = "BTreeMap::is_empty")]
    vendor_severity: BTreeMap<String, i32>,
    #[serde(rename = "CVSS", skip_serializing_if = "BTreeMap::is_empty")]
    cvss: BTreeMap<String, JsonCvss>,
    #[serde(rename = "References", skip_serializing_if = "Vec::is_empty")]
    references: Vec<String>,
    #[serde(rename = "PublishedDate", skip_serializing_if = "Option::is_none")]
    published_date: Option<String>,
    #[serde(rename = "LastModifiedDate", skip_serializing_if = "Option::is_none")]
    last_modified_date: Option<String>,
}

#[derive(Serialize)]
struct JsonIdentifier {
    #[serde(rename = "PURL", skip_serializing_if = "String::is_empty")]
    purl: String,
    #[serde(rename = "UID", skip_serializing_if = "String::is_empty")]
    uid: String,
}

#[derive(Serialize)]
struct JsonLayer {
    #[serde(rename = "Digest", skip_serializing_if = "String::is_empty")]
    digest: String,
    #[serde(rename = "DiffID", skip_serializing_if = "String::is_empty")]
    diff_id: String,
}

#[derive(Serialize)]
struct JsonDataSource {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "URL")]
    url: String,
}

#[derive(Serialize)]
struct JsonCvss {
    #[serde(rename = "V2Vector", skip_serializing_if = "String::is_empty")]
    v2_vector: String,
    #[serde(rename = "V3Vector", skip_serializing_if = "String::is_empty")]
    v3_vector: String,
    #[serde(rename = "V40Vector", skip_serializing_if = "String::is_empty")]
    v40_vector: String,
    #[serde(rename = "V2Score", skip_serializing_if = "is_zero")]
    v2_score: f64,
    #[serde(rename = "V3Score", skip_serializing_if = "is_zero")]
    v3_score: f64,
    #[serde(rename = "V40Score", skip_serializing_if = "is_zero")]
    v40_score: f64,
}

fn is_zero(f: &f64) -> bool {
    *f == 0.0
}

/// A protobuf timestamp (seconds, nanoseconds) as RFC 3339 in UTC, with a fraction only
/// when there is one.
fn rfc3339(seconds: i64, nanos: i32) -> Option<String> {
    let nanos = u32::try_from(nanos).ok()?;
    chrono::DateTime::from_timestamp(seconds, nanos)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

impl From<&pb::Vulnerability> for JsonVulnerability {
    fn from(v: &pb::Vulnerability) -> Self {
        JsonVulnerability {
            vulnerability_id: v.vulnerability_id.clone(),
            pkg_id: v.pkg_id.clone(),
            pkg_name: v.pkg_name.clone(),
            pkg_path: v.pkg_path.clone(),
            pkg_identifier: v
                .pkg_identifier
                .as_ref()
                .filter(|i| !(i.purl.is_empty() && i.uid.is_empty()))
                .map(|i| JsonIdentifier {
                    purl: i.purl.clone(),
                    uid: i.uid.clone(),
                }),
            installed_version: v.installed_version.clone(),
            fixed_version: v.fixed_version.clone(),
            status: usize::try_from(v.status)
                .ok()
                .filter(|&s| s > 0)
                .and_then(|s| STATUSES.get(s).copied()),
            layer: v
                .layer
                .as_ref()
                .filter(|l| !(l.digest.is_empty() && l.diff_id.is_empty()))
                .map(|l| JsonLayer {
                    digest: l.digest.clone(),
                    diff_id: l.diff_id.clone(),
                }),
            severity_source: v.severity_source.clone(),
            primary_url: v.primary_url.clone(),
            data_source: v.data_source.as_ref().map(|d| JsonDataSource {
                id: d.id.clone(),
                name: d.name.clone(),
                url: d.url.clone(),
            }),
            title: v.title.clone(),
            description: v.description.clone(),
            severity: severity_name(v.severity),
            cwe_ids: v.cwe_ids.clone(),
            vendor_severity: v
                .vendor_severity
                .iter()
                .map(|(k, s)| (k.clone(), *s))
                .collect(),
            cvss: v
                .cvss
                .iter()
                .map(|(k, c)| {
                    (
                        k.clone(),
                        JsonCvss {
                            v2_vector: c.v2_vector.clone(),
                            v3_vector: c.v3_vector.clone(),
                            v40_vector: c.v40_vector.clone(),
                            v2_score: c.v2_score,
                            v3_score: c.v3_score,
                            v40_score: c.v40_score,
                        },
                    )
                })
                .collect(),
            references: v.references.clone(),
            published_date: v
                .published_date
                .as_ref()
                .and_then(|t| rfc3339(t.seconds, t.nanos)),
            last_modified_date: v
                .last_modified_date
                .as_ref()
                .and_then(|t| rfc3339(t.seconds, t.nanos)),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonLicense {
    severity: &'static str,
    category: &'static str,
    pkg_name: String,
    file_path: String,
    name: String,
    confidence: f64,
    link: String,
}

impl From<&pb::DetectedLicense> for JsonLicense {
    fn from(l: &pb::DetectedLicense) -> Self {
        JsonLicense {
            severity: severity_name(l.severity),
            category: category_name(l.category),
            pkg_name: l.pkg_name.clone(),
            file_path: l.file_path.clone(),
            name: l.name.clone(),
            confidence: f64::from(l.confidence),
            link: l.link.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use cache_core::{ArtifactId, BlobId, Digest};
    use cache_scan::{ImageKeys, LayerCounts};

    use super::*;

    fn uploaded() -> Uploaded {
        Uploaded {
            keys: ImageKeys {
                artifact: ArtifactId::from(Digest::from_sha256([1; 32])),
                blobs: vec![BlobId::from(Digest::from_sha256([2; 32]))],
            },
            image_id: format!("sha256:{}", "ab".repeat(32)),
            repo_tags: vec!["app:1".into()],
            diff_ids: vec![format!("sha256:{}", "cd".repeat(32))],
            architecture: "amd64".into(),
            layers: LayerCounts {
                total: 1,
                analysed: 1,
                cached: 0,
                verified: 0,
                ..LayerCounts::default()
            },
        }
    }

    fn response() -> ScanResponse {
        let layer = pb::Layer {
            diff_id: format!("sha256:{}", "cd".repeat(32)),
            ..Default::default()
        };
        ScanResponse {
            os: Some(pb::Os {
                family: "debian".into(),
                name: "12.11".into(),
                ..Default::default()
            }),
            results: vec![ScanResult {
                target: "app.tar (debian 12.11)".into(),
                class: "os-pkgs".into(),
                r#type: "debian".into(),
                packages: vec![pb::Package {
                    name: "openssl".into(),
                    version: "3.0.15".into(),
                    release: "1~deb12u1".into(),
                    layer: Some(layer.clone()),
                    ..Default::default()
                }],
                vulnerabilities: vec![pb::Vulnerability {
                    vulnerability_id: "CVE-2024-0001".into(),
                    pkg_name: "openssl".into(),
                    installed_version: "3.0.15-1~deb12u1".into(),
                    fixed_version: "3.0.16-1~deb12u1".into(),
                    title: "openssl: a \u{1b}[31mbad\u{1b}[0m bug".into(),
                    severity: Severity::High as i32,
                    status: 3,
                    layer: Some(layer),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            layers: Vec::new(),
        }
    }

    #[test]
    fn json_has_the_references_vulnerability_shape() {
        let (up, resp) = (uploaded(), response());
        let report = ServerReport {
            artifact_name: "app.tar",
            subject: Subject::Image(&up),
            response: &resp,
            vulnerabilities_asked: true,
        };
        let mut out = Vec::new();
        report.write_json(&mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Metadata"]["OS"]["Family"], "debian");
        let result = &v["Results"][0];
        assert_eq!(result["Class"], "os-pkgs");
        assert_eq!(result["Packages"][0]["Name"], "openssl");
        let vuln = &result["Vulnerabilities"][0];
        assert_eq!(vuln["VulnerabilityID"], "CVE-2024-0001");
        assert_eq!(vuln["InstalledVersion"], "3.0.15-1~deb12u1");
        assert_eq!(vuln["FixedVersion"], "3.0.16-1~deb12u1");
        assert_eq!(vuln["Severity"], "HIGH");
        assert_eq!(vuln["Status"], "fixed");
        assert_eq!(
            vuln["Layer"]["DiffID"],
            format!("sha256:{}", "cd".repeat(32))
        );
    }

    #[test]
    fn table_lists_packages_and_vulnerabilities() {
        let (up, resp) = (uploaded(), response());
        let report = ServerReport {
            artifact_name: "app.tar",
            subject: Subject::Image(&up),
            response: &resp,
            vulnerabilities_asked: true,
        };
        let table = report.to_table();
        assert!(table.contains("OS        debian 12.11"), "{table}");
        assert!(
            table.contains("Layers    1 (1 uploaded, 0 already on the server)"),
            "{table}"
        );
        assert!(table.contains("Vulnerabilities  1"), "{table}");
        assert!(table.contains("openssl  3.0.15-1~deb12u1"), "{table}");
        let vuln_line = table
            .lines()
            .find(|l| l.starts_with("CVE-2024-0001"))
            .unwrap_or_else(|| panic!("{table}"));
        for cell in [
            "openssl",
            "3.0.15-1~deb12u1",
            "3.0.16-1~deb12u1",
            "HIGH",
            "openssl: a",
        ] {
            assert!(vuln_line.contains(cell), "{vuln_line}");
        }
        assert!(
            !table.contains('\u{1b}'),
            "escape sequences are shown escaped: {table}"
        );
    }

    #[test]
    fn a_directory_s_report_has_no_image_fields() {
        let resp = response();
        let target = UploadedTarget {
            key: BlobId::from(Digest::from_sha256([3; 32])),
            artifact_type: cache_scan::ArtifactType::Filesystem,
            source: TargetSource::OnServer,
        };
        let report = ServerReport {
            artifact_name: "src/app",
            subject: Subject::Target(&target),
            response: &resp,
            vulnerabilities_asked: false,
        };
        let mut out = Vec::new();
        report.write_json(&mut out).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["ArtifactType"], "filesystem");
        assert_eq!(v["ArtifactName"], "src/app");
        for absent in ["ImageID", "DiffIDs", "RepoTags"] {
            assert!(v["Metadata"].get(absent).is_none(), "{absent}: {v}");
        }
        let table = report.to_table();
        assert!(table.starts_with("Target    src/app\n"), "{table}");
        assert!(table.contains("Result    already on the server"), "{table}");
    }
}
