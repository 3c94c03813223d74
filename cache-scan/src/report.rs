//! [`Report`]: the result of a scan, as JSON shaped like the reference tool's report or
//! as a table for an 80-column terminal.

use std::{
    borrow::Cow,
    fmt::Write as _,
    io::{self, Write as _},
};

use cache_core::{Os, Package, Repository};
use serde::Serialize;
use serde_json::Value;

/// The report's `SchemaVersion`, as the reference tool writes it.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// The revision of how reports are rendered (table, JSON, CycloneDX, SPDX). It is part of
/// the key of a stored report (docs/keys.md, "Keys of stored reports"), so a new revision
/// retires every report stored by the old rendering: raise it with any change to the
/// bytes a report is written as. The test `report_rendering_is_pinned_to_its_revision`
/// (`cache-cli/tests/cli.rs`) fails until it is raised.
pub const REPORT_RENDERING: u32 = 3;

/// What was scanned, as the report's `ArtifactType` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArtifactType {
    /// An image archive (`container_image`).
    #[default]
    ContainerImage,
    /// A directory: `fs` or `rootfs` (`filesystem`).
    Filesystem,
    /// A CycloneDX document (`cyclonedx`).
    Cyclonedx,
    /// An SPDX document (`spdx`).
    Spdx,
}

impl ArtifactType {
    /// The reference's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactType::ContainerImage => "container_image",
            ArtifactType::Filesystem => "filesystem",
            ArtifactType::Cyclonedx => "cyclonedx",
            ArtifactType::Spdx => "spdx",
        }
    }
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The name the image was scanned under: the input path as given.
    pub artifact_name: String,
    /// What was scanned: an image, a directory or an SBOM.
    pub artifact_type: ArtifactType,
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
    /// Language applications (see [`crate::Applied::applications`]).
    pub applications: Vec<ReportApplication>,
    /// How the layers' results were obtained.
    pub layers: LayerCounts,
    /// Where each layer's result came from, bottom first (one per entry of `diff_ids`).
    pub layer_sources: Vec<LayerSource>,
}

/// Where one layer's result came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerSource {
    /// This scan read and analysed the layer.
    Analysed,
    /// The result was in the cache.
    Cached,
    /// Another scan was analysing the layer; this one waited for its result.
    Waited,
}

impl LayerSource {
    /// `analysed`, `cached` or `waited`: the name in logs and in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            LayerSource::Analysed => "analysed",
            LayerSource::Cached => "cached",
            LayerSource::Waited => "waited",
        }
    }
}

/// The language packages of one application.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportApplication {
    /// The application type, e.g. `python-pkg`, `gobinary`.
    pub app_type: String,
    /// The package file or lock file; empty for the types reported together
    /// ([`crate::AGGREGATED_TYPES`]).
    pub file_path: String,
    /// Its packages, each with the layer that provided it.
    pub packages: Vec<ReportPackage>,
}

impl ReportApplication {
    /// The `Target` of its result: the file path, or the reference's name for the types
    /// reported together (`Python`, `Node.js`, `Ruby`, `Conda`, `Java`).
    pub fn target(&self) -> String {
        match self.app_type.as_str() {
            _ if !self.file_path.is_empty() => self.file_path.clone(),
            "python-pkg" => "Python".into(),
            "node-pkg" => "Node.js".into(),
            "gemspec" => "Ruby".into(),
            "conda-pkg" => "Conda".into(),
            "jar" => "Java".into(),
            other => other.to_owned(),
        }
    }
}

/// One installed package and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportPackage {
    /// The package as the analyser recorded it.
    pub package: Package,
    /// The package database it is listed in, e.g. `var/lib/dpkg/status`, or the file of
    /// its application.
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

/// Layer counts of one scan. `analysed + cached + waited == total`; layers appearing
/// twice in an image are counted at each position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerCounts {
    /// Layers in the image.
    pub total: usize,
    /// Layers read and analysed in this scan (their result was not cached).
    pub analysed: usize,
    /// Layers whose result came from the cache without reading them.
    pub cached: usize,
    /// Layers another scan was analysing at the same time: this one waited for their
    /// results instead of reading them (single-flight).
    pub waited: usize,
    /// Cached layers that were hashed anyway (`verify_layers`).
    pub verified: usize,
    /// What the analysed layers collapsed and skipped (zero for cached layers).
    pub counters: crate::ScanCounters,
}

impl LayerCounts {
    /// Sets `analysed`, `cached` and `waited` from each layer's source.
    pub(crate) fn set_sources(&mut self, sources: &[LayerSource]) {
        let count = |s: LayerSource| sources.iter().filter(|x| **x == s).count();
        self.analysed = count(LayerSource::Analysed);
        self.cached = count(LayerSource::Cached);
        self.waited = count(LayerSource::Waited);
    }
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
    pub fn write_json<W: io::Write>(&self, out: W) -> io::Result<()> {
        // A buffer of its own: the serializer's many small writes stay monomorphic
        // copies, whatever writer (a `dyn Write`) the caller passes.
        let mut out = io::BufWriter::with_capacity(1 << 16, out);
        serde_json::to_writer_pretty(&mut out, &self.json_view()).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
        out.flush()
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
        let mut apps: Vec<&ReportApplication> = self.applications.iter().collect();
        apps.sort_by_key(|a| (a.target(), a.app_type.clone()));
        for app in apps {
            results.push(JsonResult {
                target: app.target(),
                class: "lang-pkgs",
                kind: &app.app_type,
                packages: app.packages.iter().map(JsonPackage::from).collect(),
            });
        }
        JsonReport {
            schema_version: REPORT_SCHEMA_VERSION,
            artifact_name: &self.artifact_name,
            artifact_type: self.artifact_type.as_str(),
            metadata: JsonMetadata {
                os: self.os.as_ref().map(JsonOs::from),
                image_id: &self.image_id,
                diff_ids: &self.diff_ids,
                repo_tags: &self.repo_tags,
                layers: self
                    .diff_ids
                    .iter()
                    .zip(&self.layer_sources)
                    .map(|(diff_id, source)| JsonLayerSource {
                        diff_id,
                        source: *source,
                    })
                    .collect(),
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
        if self.artifact_type == ArtifactType::ContainerImage {
            let _ = writeln!(out, "Image     {}", fit(&image, 70));
            let _ = writeln!(out, "Image ID  {}", short_digest(&self.image_id));
        } else {
            let _ = writeln!(out, "Target    {}", fit(&image, 70));
        }
        let os = self
            .os
            .as_ref()
            .map_or_else(|| "not detected".to_owned(), os_label);
        let _ = writeln!(out, "OS        {}", fit(&printable(&os), 70));
        let c = self.layers;
        let mut counts = format!(
            "{} ({} analysed, {} from cache",
            c.total, c.analysed, c.cached
        );
        if c.waited > 0 {
            let _ = write!(counts, ", {} from another scan", c.waited);
        }
        if c.verified > 0 {
            let _ = write!(counts, ", {} verified", c.verified);
        }
        counts.push(')');
        let _ = writeln!(out, "Layers    {counts}");
        let lang: usize = self.applications.iter().map(|a| a.packages.len()).sum();
        if lang == 0 {
            let _ = writeln!(out, "Packages  {}", self.packages.len());
        } else {
            let _ = writeln!(
                out,
                "Packages  {} ({} OS, {lang} language)",
                self.packages.len() + lang,
                self.packages.len()
            );
        }
        let mut groups: Vec<(String, &[ReportPackage])> = Vec::new();
        if !self.packages.is_empty() {
            let os = self.os.as_ref().map_or_else(
                || "OS packages".to_owned(),
                |os| format!("OS packages ({})", os_label(os)),
            );
            groups.push((os, &self.packages));
        }
        let mut apps: Vec<&ReportApplication> = self.applications.iter().collect();
        apps.sort_by_key(|a| (a.target(), a.app_type.clone()));
        for app in apps {
            groups.push((
                format!("{} ({})", app.target(), app.app_type),
                &app.packages,
            ));
        }
        for (title, packages) in groups {
            out.push('\n');
            let _ = writeln!(out, "{}", fit(&printable(&title), 80));
            package_table(&mut out, packages);
        }
        out
    }
}

/// One table of packages: a header line, then name, version and layer per package.
fn package_table(out: &mut String, packages: &[ReportPackage]) {
    {
        // Names and versions come from the archive: escaped, so they cannot move the
        // cursor, recolour or rewrite the terminal.
        let names: Vec<String> = packages
            .iter()
            .map(|p| printable(&p.package.name))
            .collect();
        let versions: Vec<String> = packages
            .iter()
            .map(|p| printable(&p.full_version()))
            .collect();
        let name_w = column_width(names.iter().map(String::as_str), 29);
        let version_w = column_width(versions.iter().map(String::as_str), 28);
        let _ = writeln!(out, "{:name_w$}  {:version_w$}  LAYER", "NAME", "VERSION");
        for ((p, name), version) in packages.iter().zip(&names).zip(&versions) {
            let _ = writeln!(
                out,
                "{}  {}  {}",
                pad(&fit(name, name_w), name_w),
                pad(&fit(version, version_w), version_w),
                printable(&short_digest(&p.layer_diff_id)),
            );
        }
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

/// An OS for the table: family and release (`none` has none).
fn os_label(os: &Os) -> String {
    if os.name.is_empty() {
        os.family.clone()
    } else {
        format!("{} {}", os.family, os.name)
    }
}

/// `Metadata.OS` as the reference writes it: `Family` and `Name` always (`none` has no
/// release), `EOSL` when past its end of life, then what this version does not model.
#[derive(Serialize)]
struct JsonOs<'a> {
    #[serde(rename = "Family")]
    family: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "EOSL", skip_serializing_if = "std::ops::Not::not")]
    eosl: bool,
    #[serde(flatten)]
    extra: &'a cache_core::Extra,
}

impl<'a> From<&'a Os> for JsonOs<'a> {
    fn from(os: &'a Os) -> Self {
        JsonOs {
            family: &os.family,
            name: &os.name,
            eosl: os.eosl,
            extra: &os.extra,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonMetadata<'a> {
    #[serde(rename = "OS", skip_serializing_if = "Option::is_none")]
    os: Option<JsonOs<'a>>,
    #[serde(rename = "ImageID", skip_serializing_if = "str::is_empty")]
    image_id: &'a str,
    #[serde(rename = "DiffIDs", skip_serializing_if = "<[String]>::is_empty")]
    diff_ids: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    repo_tags: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    layers: Vec<JsonLayerSource<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct JsonLayerSource<'a> {
    #[serde(rename = "DiffID")]
    diff_id: &'a str,
    source: LayerSource,
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
    package: Cow<'a, Package>,
    #[serde(rename = "Layer", skip_serializing_if = "Option::is_none")]
    layer: Option<JsonLayer<'a>>,
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
        // Installed files are left out, and a `Layer` kept from another tool's document
        // would be written twice: a package with neither is written as it is (no copy).
        let package =
            if p.package.installed_files.is_empty() && !p.package.extra.contains_key("Layer") {
                Cow::Borrowed(&p.package)
            } else {
                let mut package = p.package.clone();
                package.installed_files.clear();
                package.extra.remove("Layer");
                Cow::Owned(package)
            };
        JsonPackage {
            package,
            // Packages of a directory or an SBOM without layers have none.
            layer: (!p.layer_diff_id.is_empty() || p.layer_digest.is_some()).then(|| JsonLayer {
                digest: p.layer_digest.as_deref(),
                diff_id: &p.layer_diff_id,
            }),
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
            artifact_type: ArtifactType::ContainerImage,
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
            applications: Vec::new(),
            layers: LayerCounts {
                total: 1,
                analysed: 1,
                cached: 0,
                verified: 0,
                ..LayerCounts::default()
            },
            layer_sources: vec![LayerSource::Analysed],
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
        assert_eq!(
            v["Metadata"]["Layers"],
            serde_json::json!([{"DiffID": format!("sha256:{}", "ab".repeat(32)), "Source": "analysed"}])
        );
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
