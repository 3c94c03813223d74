//! [`Report`]: the result of a scan, as JSON shaped like the reference tool's report or
//! as a table for an 80-column terminal.

use std::{fmt::Write as _, io};

use cache_core::{Os, Package, Repository};
use serde::Serialize;
use serde_json::Value;

/// The report's `SchemaVersion`, as the reference tool writes it.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// What a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The name the image was scanned under: the input path as given.
    pub artifact_name: String,
    /// `sha256` of the image config.
    pub image_id: String,
    /// Tags the archive gives the image (may be empty).
    pub repo_tags: Vec<String>,
    /// Layer diffIDs, bottom first.
    pub diff_ids: Vec<String>,
    /// CPU architecture from the config, e.g. `amd64`.
    pub architecture: String,
    /// The operating system of the final image, if one was detected.
    pub os: Option<Os>,
    /// The package repository of the final image (Alpine), if one was detected.
    pub repository: Option<Repository>,
    /// Installed OS packages, sorted by name, each with the layer that provided it.
    pub packages: Vec<ReportPackage>,
    /// How the layers' results were obtained.
    pub layers: LayerCounts,
}

/// One installed package and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportPackage {
    /// The package as the analyser recorded it.
    pub package: Package,
    /// The package database it is listed in, e.g. `var/lib/dpkg/status`.
    pub file_path: String,
    /// DiffID of the layer that provided it.
    pub layer_diff_id: String,
    /// Stored digest of that layer in this archive, when the format names one (OCI).
    pub layer_digest: Option<String>,
}

impl ReportPackage {
    /// The full version: `[epoch:]version[-release]`.
    pub fn full_version(&self) -> String {
        let p = &self.package;
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
}

/// Layer counts of one scan. `analysed + cached == total`; layers appearing twice in an
/// image are counted at each position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCounts {
    /// Layers in the image.
    pub total: usize,
    /// Layers read and analysed in this scan (their result was not cached).
    pub analysed: usize,
    /// Layers whose result came from the cache without reading them.
    pub cached: usize,
    /// Cached layers that were hashed anyway (`verify_layers`).
    pub verified: usize,
    /// What the analysed layers collapsed and skipped (zero for cached layers).
    pub counters: crate::ScanCounters,
}

impl Report {
    /// The `Target` of the OS-packages result: `NAME (family version)`.
    pub fn target(&self) -> String {
        match &self.os {
            Some(os) => format!("{} ({} {})", self.artifact_name, os.family, os.name),
            None => self.artifact_name.clone(),
        }
    }

    /// The report as a JSON value, shaped like the reference tool's: `SchemaVersion` 2,
    /// `ArtifactName`, `ArtifactType` `container_image`, `Metadata` {`OS`, `ImageID`,
    /// `DiffIDs`, `RepoTags`}, `Results` [{`Target`, `Class` `os-pkgs`, `Type`,
    /// `Packages`}]. Each package carries `Layer` {`Digest`, `DiffID`}; installed file
    /// lists are left out. `Results` is empty when neither an OS nor a package was found.
    ///
    /// A `Value` sorts object keys; [`Report::write_json`] writes the same document with
    /// the reference tool's key order.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json_view()).unwrap_or(Value::Null)
    }

    /// Writes the JSON report (see [`Report::to_json`]) pretty-printed, keys in the
    /// reference tool's order, followed by a newline.
    pub fn write_json<W: io::Write>(&self, mut out: W) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut out, &self.json_view()).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }

    fn json_view(&self) -> JsonReport<'_> {
        let mut results = Vec::new();
        if self.os.is_some() || !self.packages.is_empty() {
            results.push(JsonResult {
                target: self.target(),
                class: "os-pkgs",
                kind: self.os.as_ref().map_or("unknown", |os| os.family.as_str()),
                packages: self.packages.iter().map(JsonPackage::from).collect(),
            });
        }
        JsonReport {
            schema_version: REPORT_SCHEMA_VERSION,
            artifact_name: &self.artifact_name,
            artifact_type: "container_image",
            metadata: JsonMetadata {
                os: self.os.as_ref(),
                image_id: &self.image_id,
                diff_ids: &self.diff_ids,
                repo_tags: &self.repo_tags,
            },
            results,
        }
    }

    /// The report as a table for a terminal of 80 columns: image, OS, layer counts, then
    /// one line per package (name, version, layer). Long names and versions are cut with
    /// `…`.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let image = if self.repo_tags.is_empty() {
            self.artifact_name.clone()
        } else {
            format!("{} ({})", self.artifact_name, self.repo_tags.join(", "))
        };
        let image = printable(&image);
        let _ = writeln!(out, "Image     {}", fit(&image, 70));
        let _ = writeln!(out, "Image ID  {}", short_digest(&self.image_id));
        let os = self.os.as_ref().map_or_else(
            || "not detected".to_owned(),
            |os| format!("{} {}", os.family, os.name),
        );
        let _ = writeln!(out, "OS        {}", fit(&printable(&os), 70));
        let c = self.layers;
        let mut counts = format!(
            "{} ({} analysed, {} from cache",
            c.total, c.analysed, c.cached
        );
        if c.verified > 0 {
            let _ = write!(counts, ", {} verified", c.verified);
        }
        counts.push(')');
        let _ = writeln!(out, "Layers    {counts}");
        let _ = writeln!(out, "Packages  {}", self.packages.len());
        if self.packages.is_empty() {
            return out;
        }
        // Names and versions come from the archive: escaped, so they cannot move the
        // cursor, recolour or rewrite the terminal.
        let names: Vec<String> = self
            .packages
            .iter()
            .map(|p| printable(&p.package.name))
            .collect();
        let versions: Vec<String> = self
            .packages
            .iter()
            .map(|p| printable(&p.full_version()))
            .collect();
        let name_w = column_width(names.iter().map(String::as_str), 29);
        let version_w = column_width(versions.iter().map(String::as_str), 28);
        out.push('\n');
        let _ = writeln!(out, "{:name_w$}  {:version_w$}  LAYER", "NAME", "VERSION");
        for ((p, name), version) in self.packages.iter().zip(&names).zip(&versions) {
            let _ = writeln!(
                out,
                "{}  {}  {}",
                pad(&fit(name, name_w), name_w),
                pad(&fit(version, version_w), version_w),
                printable(&short_digest(&p.layer_diff_id)),
            );
        }
        out
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonReport<'a> {
    schema_version: u32,
    artifact_name: &'a str,
    artifact_type: &'static str,
    metadata: JsonMetadata<'a>,
    results: Vec<JsonResult<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonMetadata<'a> {
    #[serde(rename = "OS", skip_serializing_if = "Option::is_none")]
    os: Option<&'a Os>,
    #[serde(rename = "ImageID")]
    image_id: &'a str,
    #[serde(rename = "DiffIDs")]
    diff_ids: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    repo_tags: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonResult<'a> {
    target: String,
    class: &'static str,
    #[serde(rename = "Type")]
    kind: &'a str,
    packages: Vec<JsonPackage<'a>>,
}

#[derive(Serialize)]
struct JsonPackage<'a> {
    #[serde(flatten)]
    package: Package,
    #[serde(rename = "Layer")]
    layer: JsonLayer<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonLayer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<&'a str>,
    #[serde(rename = "DiffID")]
    diff_id: &'a str,
}

impl<'a> From<&'a ReportPackage> for JsonPackage<'a> {
    fn from(p: &'a ReportPackage) -> Self {
        let mut package = p.package.clone();
        package.installed_files.clear();
        // A `Layer` kept from another tool's document would be written twice.
        package.extra.remove("Layer");
        JsonPackage {
            package,
            layer: JsonLayer {
                digest: p.layer_digest.as_deref(),
                diff_id: &p.layer_diff_id,
            },
        }
    }
}

/// `sha256:` and the first 12 hex digits.
fn short_digest(d: &str) -> String {
    d.chars().take("sha256:".len() + 12).collect()
}

fn column_width<'a>(cells: impl Iterator<Item = &'a str>, max: usize) -> usize {
    cells
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(7, max)
}

/// `s` with control characters (escape sequences, newlines, …) and bidirectional
/// overrides written as Rust escapes (`\u{1b}`), fit for a terminal.
fn printable(s: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Cuts `s` to `width` characters, ending in `…` when cut.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn pad(s: &str, width: usize) -> String {
    let mut s = s.to_owned();
    let len = s.chars().count();
    s.extend(std::iter::repeat_n(' ', width.saturating_sub(len)));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let pkg = |name: &str, version: &str, release: &str, epoch: i64| ReportPackage {
            package: Package {
                id: format!("{name}@{version}"),
                name: name.into(),
                version: version.into(),
                release: release.into(),
                epoch,
                installed_files: vec!["x".into()],
                analyzed_by: "dpkg".into(),
                ..Package::default()
            },
            file_path: "var/lib/dpkg/status".into(),
            layer_diff_id: format!("sha256:{}", "ab".repeat(32)),
            layer_digest: None,
        };
        Report {
            artifact_name: "samples/debian.tar".into(),
            image_id: format!("sha256:{}", "cd".repeat(32)),
            repo_tags: vec!["sample/debian:12".into()],
            diff_ids: vec![format!("sha256:{}", "ab".repeat(32))],
            architecture: "amd64".into(),
            os: Some(Os {
                family: "debian".into(),
                name: "12.11".into(),
                ..Os::default()
            }),
            repository: None,
            packages: vec![
                pkg("adduser", "3.134", "", 0),
                pkg(&"averyveryverylongpackagename".repeat(3), "1.0", "1", 0),
                pkg("passwd", "4.13+dfsg1", &"1+b1".repeat(10), 1),
            ],
            layers: LayerCounts {
                total: 1,
                analysed: 1,
                cached: 0,
                verified: 0,
                ..LayerCounts::default()
            },
        }
    }

    #[test]
    fn json_has_the_reference_shape() {
        let v = report().to_json();
        assert_eq!(v["SchemaVersion"], 2);
        assert_eq!(v["ArtifactType"], "container_image");
        assert_eq!(v["Metadata"]["OS"]["Family"], "debian");
        assert_eq!(v["Metadata"]["RepoTags"][0], "sample/debian:12");
        let result = &v["Results"][0];
        assert_eq!(result["Target"], "samples/debian.tar (debian 12.11)");
        assert_eq!(result["Class"], "os-pkgs");
        assert_eq!(result["Type"], "debian");
        let first = &result["Packages"][0];
        assert_eq!(first["ID"], "adduser@3.134");
        assert_eq!(
            first["Layer"]["DiffID"],
            format!("sha256:{}", "ab".repeat(32))
        );
        assert!(first.get("InstalledFiles").is_none());
    }

    #[test]
    fn written_json_keeps_the_reference_order() {
        let mut out = Vec::new();
        report().write_json(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\"")).unwrap();
        assert!(at("SchemaVersion") < at("ArtifactName"));
        assert!(at("ArtifactType") < at("Metadata"));
        assert!(at("Metadata") < at("Results"));
        let pkg = &text[at("Packages")..];
        let in_pkg = |key: &str| pkg.find(&format!("\"{key}\"")).unwrap();
        assert!(in_pkg("ID") < in_pkg("Name") && in_pkg("Name") < in_pkg("Layer"));
        assert!(text.ends_with("}\n"));
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, report().to_json());
    }

    #[test]
    fn table_escapes_control_characters() {
        let mut r = report();
        r.packages[0].package.name = "evil\u{1b}[2J\u{1b}]0;owned\u{7}".into();
        r.packages[0].package.version = "1\r\nfake  2.0".into();
        r.repo_tags = vec!["x:1\u{1b}[31m".into()];
        r.os.as_mut().unwrap().name = "12\u{202e}".into();
        let table = r.to_table();
        assert!(
            !table
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{table:?}"
        );
        assert_eq!(table.lines().count(), report().to_table().lines().count());
        assert!(table.contains(r"evil\u{1b}[2J"), "{table}");
        assert!(table.contains(r"1\r\nfake"), "{table}");
        assert!(table.contains(r"x:1\u{1b}[31m"), "{table}");
        assert!(table.contains(r"12\u{202e}"), "{table}");
    }

    #[test]
    fn table_fits_80_columns() {
        let table = report().to_table();
        for line in table.lines() {
            assert!(
                line.chars().count() <= 80,
                "{line:?} is {} wide",
                line.chars().count()
            );
            assert_eq!(line.trim_end(), line, "trailing spaces in {line:?}");
        }
        assert!(table.contains("OS        debian 12.11"), "{table}");
        assert!(table.contains("1:4.13+dfsg1-1+b1"), "{table}");
        assert!(table.contains('…'), "{table}");
    }
}
