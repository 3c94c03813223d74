//! Conversion between the protocol's messages and cache-core's documents, in one place.
//!
//! - message → document ([`From`]): what a client sends becomes the document the
//!   reference's own server would have stored. Fields the document models are set
//!   directly (among them a package's `Identifier`, `Dev`, `Indirect`, `Relationship`,
//!   `FilePath` and `DependsOn`, a blob's `Applications` and `Licenses`); the others go
//!   where the reference's JSON has them, in its shape: package fields such as `Layer`,
//!   `Locations`, `BuildInfo` into the package's `extra` (a license file's `Layer` into
//!   its `extra`), and `Misconfigurations`, `Secrets`, `CustomResources`, `BuildInfo` and
//!   `CryptoAssets` as JSON values shaped like Go's `encoding/json` output of the
//!   reference's types (PascalCase keys, `omitempty` fields left out when zero, enums as
//!   their lower-case names).
//! - document → message ([`TryFrom`]): the reverse, reading documents written by either
//!   tool; a stored value of the wrong shape is a [`ConvertError`] naming the field.
//!
//! A message converted to a document and back is the message it was (round-trip tests
//! in `tests/convert.rs` check every field); what the protocol has no field for is
//! listed in `docs/server.md`.

mod gojson;
pub mod scancache;
pub mod transcode;

use cache_core::{
    Application, Extra, LicenseFile, LicenseFinding, Os, Package, PackageInfo, PkgIdentifier,
    Repository,
};
use serde_json::Value;

use crate::{
    proto::{cache as pc, common as pb, json},
    time::{Fraction, format_rfc3339, parse_rfc3339},
};
use gojson::{GoObj, GoRead, list_of};

/// A stored document that does not fit the protocol's message: which field, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{}: ", path.join(".").replace(".[", "[")) })]
pub struct ConvertError {
    /// Where, outermost first (`Applications`, `[0]`, `Packages`, …).
    pub path: Vec<String>,
    /// What was wrong.
    pub reason: String,
}

impl ConvertError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        ConvertError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    /// The same error inside `field`.
    pub(crate) fn within(mut self, field: &str) -> Self {
        self.path.insert(0, field.to_owned());
        self
    }
}

type Result<T, E = ConvertError> = std::result::Result<T, E>;

// ---- Small shared pieces ----------------------------------------------------------------

/// The reference's relationship names, by number.
const RELATIONSHIPS: [&str; 5] = ["unknown", "root", "workspace", "direct", "indirect"];

/// A relationship number's name, as the reference's JSON writes it.
pub fn relationship_name(n: i32) -> &'static str {
    usize::try_from(n)
        .ok()
        .and_then(|i| RELATIONSHIPS.get(i))
        .copied()
        .unwrap_or("unknown")
}

/// A relationship name's number (`None` for an unknown name).
pub fn relationship_number(name: &str) -> Option<i32> {
    RELATIONSHIPS
        .iter()
        .position(|r| *r == name)
        .and_then(|i| i32::try_from(i).ok())
}

/// License categories: protocol number ↔ the reference's name.
const CATEGORIES: [&str; 8] = [
    "",
    "forbidden",
    "restricted",
    "reciprocal",
    "notice",
    "permissive",
    "unencumbered",
    "unknown",
];

/// A license category number's name (`""` for unspecified or unknown numbers).
pub fn category_name(n: i32) -> &'static str {
    usize::try_from(n)
        .ok()
        .and_then(|i| CATEGORIES.get(i))
        .copied()
        .unwrap_or("")
}

/// A license category name's number (0, unspecified, for any other name).
pub fn category_number(name: &str) -> i32 {
    CATEGORIES
        .iter()
        .position(|c| *c == name && !name.is_empty())
        .and_then(|i| i32::try_from(i).ok())
        .unwrap_or(0)
}

/// License file types: protocol number ↔ the reference's name.
const LICENSE_TYPES: [&str; 4] = ["", "dpkg", "header", "license-file"];

fn license_type_name(n: i32) -> &'static str {
    usize::try_from(n)
        .ok()
        .and_then(|i| LICENSE_TYPES.get(i))
        .copied()
        .unwrap_or("")
}

fn license_type_number(name: &str) -> i32 {
    LICENSE_TYPES
        .iter()
        .position(|c| *c == name && !name.is_empty())
        .and_then(|i| i32::try_from(i).ok())
        .unwrap_or(0)
}

/// `None` for an empty list, else the list as a JSON array (a field with `omitempty`).
fn nonempty(items: Vec<Value>) -> Option<Value> {
    (!items.is_empty()).then_some(Value::Array(items))
}

/// Reads an optional JSON list of objects.
fn read_list<T>(
    value: &Option<Value>,
    field: &str,
    f: impl Fn(GoRead<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    match value {
        None => Ok(Vec::new()),
        Some(v) => list_of(v, f).map_err(|e| e.within(field)),
    }
}

/// Reads one stored item (a JSON object) with `f`.
pub(crate) fn read_value<T>(value: &Value, f: impl Fn(GoRead<'_>) -> Result<T>) -> Result<T> {
    match GoRead::of(value)? {
        Some(r) => f(r),
        None => Err(ConvertError::new("expected an object, got null")),
    }
}

/// Reads a stored `Misconfiguration`.
pub(crate) fn misconfiguration_read_value(value: &Value) -> Result<pb::Misconfiguration> {
    read_value(value, misconfiguration_read)
}

// ---- Layer, identifiers, locations ------------------------------------------------------

/// `Layer` as the reference writes it (every field `omitempty`).
pub(crate) fn layer_json(l: &pb::Layer) -> Value {
    GoObj::new()
        .int_nz("Size", l.size)
        .str_nz("Digest", &l.digest)
        .str_nz("DiffID", &l.diff_id)
        .str_nz("CreatedBy", &l.created_by)
        .build()
}

fn layer_read(r: GoRead<'_>) -> Result<pb::Layer> {
    Ok(pb::Layer {
        size: r.i64("Size")?,
        digest: r.str("Digest")?,
        diff_id: r.str("DiffID")?,
        created_by: r.str("CreatedBy")?,
    })
}

fn opt_layer_json(l: &Option<pb::Layer>) -> Value {
    l.as_ref().map_or_else(|| GoObj::new().build(), layer_json)
}

/// Reads an optional `Layer` field; the reference's zero layer (no fields) reads as an
/// absent one.
fn opt_layer_read(r: GoRead<'_>, key: &str) -> Result<Option<pb::Layer>> {
    let layer = r
        .obj(key)?
        .map(layer_read)
        .transpose()
        .map_err(|e| e.within(key))?;
    Ok(layer.filter(|l| *l != pb::Layer::default()))
}

fn code_json(code: &Option<pb::Code>) -> Value {
    let lines: Vec<Value> = code
        .iter()
        .flat_map(|c| &c.lines)
        .map(|l| {
            GoObj::new()
                .int("Number", i64::from(l.number))
                .str("Content", &l.content)
                .bool("IsCause", l.is_cause)
                .str("Annotation", &l.annotation)
                .bool("Truncated", l.truncated)
                .str_nz("Highlighted", &l.highlighted)
                .bool("FirstCause", l.first_cause)
                .bool("LastCause", l.last_cause)
                .build()
        })
        .collect();
    GoObj::new().list("Lines", lines).build()
}

fn code_read(r: Option<GoRead<'_>>) -> Result<Option<pb::Code>> {
    let Some(r) = r else { return Ok(None) };
    let lines = r.list("Lines", |l| {
        Ok(pb::Line {
            number: l.i32("Number")?,
            content: l.str("Content")?,
            is_cause: l.bool("IsCause")?,
            annotation: l.str("Annotation")?,
            truncated: l.bool("Truncated")?,
            highlighted: l.str("Highlighted")?,
            first_cause: l.bool("FirstCause")?,
            last_cause: l.bool("LastCause")?,
        })
    })?;
    Ok(Some(pb::Code { lines }))
}

fn build_info_json(b: &pb::BuildInfo) -> Value {
    GoObj::new()
        .strs_nz("ContentSets", &b.content_sets)
        .str_nz("Nvr", &b.nvr)
        .str_nz("Arch", &b.arch)
        .build()
}

fn build_info_read(r: GoRead<'_>) -> Result<pb::BuildInfo> {
    Ok(pb::BuildInfo {
        content_sets: r.strs("ContentSets")?,
        nvr: r.str("Nvr")?,
        arch: r.str("Arch")?,
    })
}

// ---- Packages ---------------------------------------------------------------------------

impl From<pb::Package> for Package {
    fn from(p: pb::Package) -> Package {
        let mut extra = GoObj::new().str_nz("Modularitylabel", &p.modularitylabel);
        if let Some(b) = &p.build_info {
            extra = extra.value("BuildInfo", build_info_json(b));
        }
        if let Some(r) = &p.repository {
            extra = extra.obj_nz("Repository", GoObj::new().str_nz("Class", &r.class).build());
        }
        if let Some(l) = &p.layer {
            extra = extra.obj_nz("Layer", layer_json(l));
        }
        let locations: Vec<Value> = p
            .locations
            .iter()
            .map(|l| {
                GoObj::new()
                    .int_nz("StartLine", i64::from(l.start_line))
                    .int_nz("EndLine", i64::from(l.end_line))
                    .build()
            })
            .collect();
        extra = extra.list_nz("Locations", locations);
        // The reference writes an identifier with nothing in it as none (`omitzero`).
        let identifier = p
            .identifier
            .map(|id| PkgIdentifier {
                purl: id.purl,
                uid: id.uid,
                bom_ref: id.bom_ref,
                extra: Extra::new(),
            })
            .filter(|id| !id.is_empty());
        Package {
            id: p.id,
            name: p.name,
            identifier,
            dev: p.dev,
            indirect: p.indirect,
            relationship: if p.relationship == 0 {
                String::new()
            } else {
                relationship_name(p.relationship).to_owned()
            },
            file_path: p.file_path,
            version: p.version,
            release: p.release,
            epoch: i64::from(p.epoch),
            arch: p.arch,
            src_name: p.src_name,
            src_version: p.src_version,
            src_release: p.src_release,
            src_epoch: i64::from(p.src_epoch),
            licenses: p.licenses,
            maintainer: p.maintainer,
            depends_on: p.depends_on,
            digest: p.digest,
            installed_files: p.installed_files,
            analyzed_by: p.analyzed_by,
            extra: extra.into_map(),
        }
    }
}

impl TryFrom<&Package> for pb::Package {
    type Error = ConvertError;

    fn try_from(p: &Package) -> Result<pb::Package> {
        let x = GoRead::map(&p.extra);
        let epoch = |n: i64, field: &str| {
            i32::try_from(n)
                .map_err(|_| ConvertError::new(format!("{n} is out of range")).within(field))
        };
        let identifier = p
            .identifier
            .as_ref()
            .map(|id| pb::PkgIdentifier {
                purl: id.purl.clone(),
                bom_ref: id.bom_ref.clone(),
                uid: id.uid.clone(),
            })
            .filter(|i| *i != pb::PkgIdentifier::default());
        let relationship = match p.relationship.as_str() {
            "" => 0,
            s => relationship_number(s).ok_or_else(|| {
                ConvertError::new(format!("unknown relationship {s:?}")).within("Relationship")
            })?,
        };
        let repository = x
            .obj("Repository")?
            .map(|r| r.str("Class").map(|class| pb::PackageRepository { class }))
            .transpose()
            .map_err(|e| e.within("Repository"))?
            .filter(|r| !r.class.is_empty());
        let build_info = x
            .obj("BuildInfo")?
            .map(build_info_read)
            .transpose()
            .map_err(|e| e.within("BuildInfo"))?;
        let locations = x.list("Locations", |l| {
            Ok(pb::Location {
                start_line: l.i32("StartLine")?,
                end_line: l.i32("EndLine")?,
            })
        })?;
        Ok(pb::Package {
            id: p.id.clone(),
            name: p.name.clone(),
            version: p.version.clone(),
            release: p.release.clone(),
            epoch: epoch(p.epoch, "Epoch")?,
            identifier,
            arch: p.arch.clone(),
            src_name: p.src_name.clone(),
            src_version: p.src_version.clone(),
            src_release: p.src_release.clone(),
            src_epoch: epoch(p.src_epoch, "SrcEpoch")?,
            licenses: p.licenses.clone(),
            locations,
            layer: opt_layer_read(x, "Layer")?,
            file_path: p.file_path.clone(),
            depends_on: p.depends_on.clone(),
            digest: p.digest.clone(),
            dev: p.dev,
            indirect: p.indirect,
            maintainer: p.maintainer.clone(),
            relationship,
            analyzed_by: p.analyzed_by.clone(),
            repository,
            modularitylabel: x.str("Modularitylabel")?,
            build_info,
            installed_files: p.installed_files.clone(),
        })
    }
}

fn packages_read(list: &[Package], field: &str) -> Result<Vec<pb::Package>> {
    list.iter()
        .enumerate()
        .map(|(i, p)| {
            pb::Package::try_from(p).map_err(|e| e.within(&format!("[{i}]")).within(field))
        })
        .collect()
}

// ---- Applications, secrets, licenses, misconfigurations, custom resources ---------------

impl From<pb::Application> for Application {
    fn from(a: pb::Application) -> Application {
        Application {
            app_type: a.r#type,
            file_path: a.file_path,
            packages: a.packages.into_iter().map(Package::from).collect(),
            extra: Extra::new(),
        }
    }
}

impl TryFrom<&Application> for pb::Application {
    type Error = ConvertError;

    fn try_from(a: &Application) -> Result<pb::Application> {
        Ok(pb::Application {
            r#type: a.app_type.clone(),
            file_path: a.file_path.clone(),
            packages: packages_read(&a.packages, "Packages")?,
        })
    }
}

fn secret_finding_json(f: &pb::SecretFinding) -> Value {
    GoObj::new()
        .str("RuleID", &f.rule_id)
        .str("Category", &f.category)
        .str("Severity", &f.severity)
        .str("Title", &f.title)
        .int("StartLine", i64::from(f.start_line))
        .int("EndLine", i64::from(f.end_line))
        .value("Code", code_json(&f.code))
        .str("Match", &f.r#match)
        .obj_nz("Layer", opt_layer_json(&f.layer))
        .int_nz("Offset", i64::from(f.offset))
        .build()
}

pub(crate) fn secret_finding_read(r: GoRead<'_>) -> Result<pb::SecretFinding> {
    Ok(pb::SecretFinding {
        rule_id: r.str("RuleID")?,
        category: r.str("Category")?,
        severity: r.str("Severity")?,
        title: r.str("Title")?,
        start_line: r.i32("StartLine")?,
        end_line: r.i32("EndLine")?,
        code: code_read(r.obj("Code")?).map_err(|e| e.within("Code"))?,
        r#match: r.str("Match")?,
        layer: opt_layer_read(r, "Layer")?,
        offset: r.i32("Offset")?,
    })
}

/// `Secret` as the reference writes it.
pub(crate) fn secret_json(s: &pb::Secret) -> Value {
    GoObj::new()
        .str("FilePath", &s.filepath)
        .list(
            "Findings",
            s.findings.iter().map(secret_finding_json).collect(),
        )
        .build()
}

/// Reads a `Secret` in the reference's shape.
pub(crate) fn secret_read(r: GoRead<'_>) -> Result<pb::Secret> {
    Ok(pb::Secret {
        filepath: r.str("FilePath")?,
        findings: r.list("Findings", secret_finding_read)?,
    })
}

impl From<&pb::LicenseFile> for LicenseFile {
    fn from(l: &pb::LicenseFile) -> LicenseFile {
        LicenseFile {
            license_type: license_type_name(l.license_type).to_owned(),
            file_path: l.file_path.clone(),
            pkg_name: l.pkg_name.clone(),
            findings: l
                .fingings
                .iter()
                .map(|f| LicenseFinding {
                    category: category_name(f.category).to_owned(),
                    name: f.name.clone(),
                    // As the reference converts it: the float32 widened.
                    confidence: f64::from(f.confidence),
                    link: f.link.clone(),
                    extra: Extra::new(),
                })
                .collect(),
            extra: GoObj::new()
                .obj_nz("Layer", opt_layer_json(&l.layer))
                .into_map(),
        }
    }
}

impl TryFrom<&LicenseFile> for pb::LicenseFile {
    type Error = ConvertError;

    fn try_from(l: &LicenseFile) -> Result<pb::LicenseFile> {
        Ok(pb::LicenseFile {
            license_type: license_type_number(&l.license_type),
            file_path: l.file_path.clone(),
            pkg_name: l.pkg_name.clone(),
            fingings: l
                .findings
                .iter()
                .map(|f| pb::LicenseFinding {
                    category: category_number(&f.category),
                    name: f.name.clone(),
                    #[allow(clippy::cast_possible_truncation)]
                    confidence: f.confidence as f32,
                    link: f.link.clone(),
                })
                .collect(),
            layer: opt_layer_read(GoRead::map(&l.extra), "Layer")?,
        })
    }
}

/// Reads a `LicenseFile` in the reference's shape.
pub(crate) fn license_file_read(r: GoRead<'_>) -> Result<pb::LicenseFile> {
    let value = Value::Object(r.raw().clone());
    let doc: LicenseFile =
        serde_json::from_value(value).map_err(|e| ConvertError::new(e.to_string()))?;
    pb::LicenseFile::try_from(&doc)
}

fn policy_json(p: &Option<pb::PolicyMetadata>) -> Value {
    let Some(p) = p else {
        return GoObj::new().build();
    };
    GoObj::new()
        .str_nz("ID", &p.id)
        .str_nz("AVDID", &p.adv_id)
        .strs_nz("Aliases", &p.aliases)
        .str_nz("Type", &p.r#type)
        .str_nz("Title", &p.title)
        .str_nz("Description", &p.description)
        .str_nz("Severity", &p.severity)
        .str_nz("RecommendedActions", &p.recommended_actions)
        .strs_nz("References", &p.references)
        .build()
}

fn policy_read(r: GoRead<'_>) -> Result<Option<pb::PolicyMetadata>> {
    let p = pb::PolicyMetadata {
        id: r.str("ID")?,
        adv_id: r.str("AVDID")?,
        r#type: r.str("Type")?,
        title: r.str("Title")?,
        description: r.str("Description")?,
        severity: r.str("Severity")?,
        recommended_actions: r.str("RecommendedActions")?,
        references: r.strs("References")?,
        aliases: r.strs("Aliases")?,
    };
    Ok((p != pb::PolicyMetadata::default()).then_some(p))
}

fn cause_json(c: &Option<pb::CauseMetadata>) -> Value {
    let Some(c) = c else {
        return GoObj::new().build();
    };
    let code = code_json(&c.code);
    let rendered = c.rendered_cause.as_ref().map_or_else(
        || GoObj::new().build(),
        |r| {
            GoObj::new()
                .str_nz("Raw", &r.raw)
                .str_nz("Highlighted", &r.highlighted)
                .build()
        },
    );
    let mut obj = GoObj::new()
        .str_nz("Resource", &c.resource)
        .str_nz("Provider", &c.provider)
        .str_nz("Service", &c.service)
        .int_nz("StartLine", i64::from(c.start_line))
        .int_nz("EndLine", i64::from(c.end_line));
    // `Code` is `omitzero`: left out when it has no lines.
    if c.code.as_ref().is_some_and(|c| !c.lines.is_empty()) {
        obj = obj.value("Code", code);
    }
    obj.obj_nz("RenderedCause", rendered).build()
}

fn cause_read(r: GoRead<'_>) -> Result<Option<pb::CauseMetadata>> {
    let rendered = r
        .obj("RenderedCause")?
        .map(|x| -> Result<pb::RenderedCause> {
            Ok(pb::RenderedCause {
                raw: x.str("Raw")?,
                highlighted: x.str("Highlighted")?,
            })
        })
        .transpose()
        .map_err(|e| e.within("RenderedCause"))?
        .filter(|x| *x != pb::RenderedCause::default());
    let c = pb::CauseMetadata {
        resource: r.str("Resource")?,
        provider: r.str("Provider")?,
        service: r.str("Service")?,
        start_line: r.i32("StartLine")?,
        end_line: r.i32("EndLine")?,
        code: code_read(r.obj("Code")?)
            .map_err(|e| e.within("Code"))?
            .filter(|c| !c.lines.is_empty()),
        rendered_cause: rendered,
    };
    Ok((c != pb::CauseMetadata::default()).then_some(c))
}

/// `MisconfResult`: its own fields with the policy and cause metadata embedded (Go
/// inlines embedded structs).
fn misconf_result_json(m: &pb::MisconfResult) -> Value {
    GoObj::new()
        .str_nz("Namespace", &m.namespace)
        .str_nz("Query", &m.query)
        .str_nz("Message", &m.message)
        .inline(policy_json(&m.policy_metadata))
        .inline(cause_json(&m.cause_metadata))
        .build()
}

fn misconf_result_read(r: GoRead<'_>) -> Result<pb::MisconfResult> {
    Ok(pb::MisconfResult {
        namespace: r.str("Namespace")?,
        message: r.str("Message")?,
        policy_metadata: policy_read(r)?,
        cause_metadata: cause_read(r)?,
        query: r.str("Query")?,
    })
}

/// `Misconfiguration` as the reference writes it.
pub(crate) fn misconfiguration_json(m: &pb::Misconfiguration) -> Value {
    let results = |list: &[pb::MisconfResult]| list.iter().map(misconf_result_json).collect();
    GoObj::new()
        .str_nz("FileType", &m.file_type)
        .str_nz("FilePath", &m.file_path)
        .list_nz("Successes", results(&m.successes))
        .list_nz("Warnings", results(&m.warnings))
        .list_nz("Failures", results(&m.failures))
        .build()
}

/// Reads a `Misconfiguration` in the reference's shape.
pub(crate) fn misconfiguration_read(r: GoRead<'_>) -> Result<pb::Misconfiguration> {
    Ok(pb::Misconfiguration {
        file_type: r.str("FileType")?,
        file_path: r.str("FilePath")?,
        successes: r.list("Successes", misconf_result_read)?,
        warnings: r.list("Warnings", misconf_result_read)?,
        failures: r.list("Failures", misconf_result_read)?,
    })
}

/// `CustomResource` as the reference writes it (its `Layer` has no `omitempty`).
pub(crate) fn custom_resource_json(c: &pb::CustomResource) -> Value {
    GoObj::new()
        .str("Type", &c.r#type)
        .str("FilePath", &c.file_path)
        .value("Layer", opt_layer_json(&c.layer))
        .value(
            "Data",
            c.data.as_ref().map_or(Value::Null, json::value_to_json),
        )
        .build()
}

/// Reads a `CustomResource` in the reference's shape.
pub(crate) fn custom_resource_read(r: GoRead<'_>) -> Result<pb::CustomResource> {
    Ok(pb::CustomResource {
        r#type: r.str("Type")?,
        file_path: r.str("FilePath")?,
        layer: opt_layer_read(r, "Layer")?,
        data: r.get("Data").map(json::value_from_json),
    })
}

// ---- Cryptographic assets ---------------------------------------------------------------

/// The JSON key of a crypto field: its PascalCase name, with the reference's initialisms.
fn crypto_key(proto_name: &str) -> String {
    match proto_name {
        "dns_names" => "DNSNames".into(),
        "ip_addresses" => "IPAddresses".into(),
        "uris" => "URIs".into(),
        "is_ca" => "IsCA".into(),
        other => other
            .split('_')
            .map(|part| {
                let mut c = part.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect(),
    }
}

/// The inverse of [`crypto_key`] for the keys of one message's JSON form.
fn crypto_unkey(key: &str, proto_keys: &serde_json::Map<String, Value>) -> Option<String> {
    proto_keys
        .keys()
        .find(|k| crypto_key(k).eq_ignore_ascii_case(key))
        .cloned()
}

/// A crypto asset in the reference's style: every field `omitempty`, PascalCase keys,
/// integers as numbers. (The reference's model of these is young; see docs/server.md.)
fn crypto_json(value: Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let v = match v {
                    Value::Object(_) => crypto_json(v),
                    Value::Array(items) => {
                        Value::Array(items.into_iter().map(crypto_json).collect())
                    }
                    Value::String(s) if k == "max_path_len" => s
                        .parse::<i64>()
                        .map_or(Value::String(s), |n| Value::Number(n.into())),
                    other => other,
                };
                let zero = match &v {
                    Value::Null => true,
                    Value::Bool(b) => !b,
                    Value::String(s) => s.is_empty(),
                    Value::Number(n) => n.as_f64() == Some(0.0),
                    Value::Array(a) => a.is_empty(),
                    Value::Object(o) => o.is_empty(),
                };
                if !zero {
                    out.insert(crypto_key(&k), v);
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

/// Renames a stored crypto asset's keys back to proto names, given the message's JSON
/// form (for its key set).
fn crypto_proto_json(value: &Value, template: &Value) -> Value {
    match (value, template) {
        (Value::Object(m), Value::Object(t)) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                let Some(name) = crypto_unkey(k, t) else {
                    continue;
                };
                let sub = t.get(&name).unwrap_or(&Value::Null);
                let v = match (v, sub) {
                    (Value::Object(_), _) => {
                        crypto_proto_json(v, &crypto_template(&name).unwrap_or_else(|| sub.clone()))
                    }
                    (Value::Array(items), _) => Value::Array(
                        items
                            .iter()
                            .map(|i| {
                                crypto_proto_json(i, &crypto_template(&name).unwrap_or(Value::Null))
                            })
                            .collect(),
                    ),
                    _ => v.clone(),
                };
                out.insert(name, v);
            }
            Value::Object(out)
        }
        (v, _) => v.clone(),
    }
}

/// The JSON form of the (default) message a crypto field holds, for its key set.
fn crypto_template(field: &str) -> Option<Value> {
    use json::Json;
    Some(match field {
        "identity" => pb::CryptoIdentity::default().to_json(),
        "certificate" => pb::CryptoCertificate::default().to_json(),
        "key" => pb::CryptoKey::default().to_json(),
        "algorithm" => pb::CryptoAlgorithm::default().to_json(),
        "relationships" => pb::CryptoRelationship::default().to_json(),
        "related_asset" => pb::CryptoDescriptor::default().to_json(),
        "layer" => pb::Layer::default().to_json(),
        _ => return None,
    })
}

fn crypto_asset_json(a: &pb::CryptoAsset) -> Value {
    use json::Json;
    let mut v = crypto_json(a.to_json());
    // The layer in the reference's own spelling.
    if let (Value::Object(m), Some(l)) = (&mut v, &a.layer) {
        m.remove("Layer");
        if let Value::Object(l) = layer_json(l)
            && !l.is_empty()
        {
            m.insert("Layer".into(), Value::Object(l));
        }
    }
    v
}

fn crypto_asset_read(r: GoRead<'_>) -> Result<pb::CryptoAsset> {
    use json::Json;
    let layer = opt_layer_read(r, "Layer")?;
    let mut raw = r.raw().clone();
    raw.remove("Layer");
    let template = pb::CryptoAsset::default().to_json();
    let proto_json = crypto_proto_json(&Value::Object(raw), &template);
    let mut asset =
        pb::CryptoAsset::from_json(&proto_json).map_err(|e| ConvertError::new(e.to_string()))?;
    asset.layer = layer;
    Ok(asset)
}

// ---- Documents --------------------------------------------------------------------------

impl From<pc::BlobInfo> for cache_core::BlobInfo {
    fn from(b: pc::BlobInfo) -> cache_core::BlobInfo {
        // The reference's `OS` is `omitzero`: an OS message with nothing in it is no OS.
        let os = b.os.and_then(|o| {
            let extra = GoObj::new()
                .str_nz("Supplier", &o.supplier)
                .bool_nz("extended", o.extended)
                .into_map();
            let os = Os {
                family: o.family,
                name: o.name,
                eosl: o.eosl,
                extra,
            };
            (os != Os::default()).then_some(os)
        });
        cache_core::BlobInfo {
            schema_version: i64::from(b.schema_version),
            size: b.size,
            digest: b.digest,
            diff_id: b.diff_id,
            created_by: b.created_by,
            opaque_dirs: b.opaque_dirs,
            whiteout_files: b.whiteout_files,
            os,
            repository: b.repository.map(|r| Repository {
                family: r.family,
                release: r.release,
                extra: Extra::new(),
            }),
            package_infos: b
                .package_infos
                .into_iter()
                .map(|i| PackageInfo {
                    file_path: i.file_path,
                    packages: i.packages.into_iter().map(Package::from).collect(),
                    extra: Extra::new(),
                })
                .collect(),
            applications: b.applications.into_iter().map(Application::from).collect(),
            misconfigurations: nonempty(
                b.misconfigurations
                    .iter()
                    .map(misconfiguration_json)
                    .collect(),
            ),
            secrets: nonempty(b.secrets.iter().map(secret_json).collect()),
            licenses: b.licenses.iter().map(LicenseFile::from).collect(),
            crypto_assets: nonempty(b.crypto_assets.iter().map(crypto_asset_json).collect()),
            build_info: b.build_info.as_ref().map(build_info_json),
            custom_resources: nonempty(
                b.custom_resources
                    .iter()
                    .map(custom_resource_json)
                    .collect(),
            ),
            extra: Extra::new(),
        }
    }
}

impl TryFrom<&cache_core::BlobInfo> for pc::BlobInfo {
    type Error = ConvertError;

    fn try_from(b: &cache_core::BlobInfo) -> Result<pc::BlobInfo> {
        let os = match &b.os {
            None => None,
            Some(o) => {
                let x = GoRead::map(&o.extra);
                Some(pb::Os {
                    family: o.family.clone(),
                    name: o.name.clone(),
                    eosl: o.eosl,
                    extended: x.bool("extended").map_err(|e| e.within("OS"))?,
                    supplier: x.str("Supplier").map_err(|e| e.within("OS"))?,
                })
            }
        };
        let package_infos = b
            .package_infos
            .iter()
            .enumerate()
            .map(|(i, info)| {
                Ok(pb::PackageInfo {
                    file_path: info.file_path.clone(),
                    packages: packages_read(&info.packages, "Packages")
                        .map_err(|e| e.within(&format!("[{i}]")).within("PackageInfos"))?,
                })
            })
            .collect::<Result<_>>()?;
        let build_info = match &b.build_info {
            None => None,
            Some(v) => GoRead::of(v)
                .and_then(|r| r.map(build_info_read).transpose())
                .map_err(|e| e.within("BuildInfo"))?,
        };
        Ok(pc::BlobInfo {
            schema_version: i32::try_from(b.schema_version).map_err(|_| {
                ConvertError::new(format!("{} is out of range", b.schema_version))
                    .within("SchemaVersion")
            })?,
            os,
            repository: b.repository.as_ref().map(|r| pb::Repository {
                family: r.family.clone(),
                release: r.release.clone(),
            }),
            package_infos,
            applications: b
                .applications
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    pb::Application::try_from(a)
                        .map_err(|e| e.within(&format!("[{i}]")).within("Applications"))
                })
                .collect::<Result<_>>()?,
            misconfigurations: read_list(
                &b.misconfigurations,
                "Misconfigurations",
                misconfiguration_read,
            )?,
            opaque_dirs: b.opaque_dirs.clone(),
            whiteout_files: b.whiteout_files.clone(),
            digest: b.digest.clone(),
            diff_id: b.diff_id.clone(),
            custom_resources: read_list(
                &b.custom_resources,
                "CustomResources",
                custom_resource_read,
            )?,
            secrets: read_list(&b.secrets, "Secrets", secret_read)?,
            licenses: b
                .licenses
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    pb::LicenseFile::try_from(l)
                        .map_err(|e| e.within(&format!("[{i}]")).within("Licenses"))
                })
                .collect::<Result<_>>()?,
            size: b.size,
            created_by: b.created_by.clone(),
            build_info,
            crypto_assets: read_list(&b.crypto_assets, "CryptoAssets", crypto_asset_read)?,
        })
    }
}

impl From<pc::ArtifactInfo> for cache_core::ArtifactInfo {
    fn from(a: pc::ArtifactInfo) -> cache_core::ArtifactInfo {
        cache_core::ArtifactInfo {
            schema_version: i64::from(a.schema_version),
            architecture: a.architecture,
            created: a
                .created
                .as_ref()
                .map(|t| format_rfc3339(t, Fraction::Trimmed))
                .unwrap_or_default(),
            docker_version: a.docker_version,
            os: a.os,
            history_packages: a.history_packages.into_iter().map(Package::from).collect(),
            misconfiguration: None,
            secret: a.secret.as_ref().map(secret_json),
            extra: Extra::new(),
        }
    }
}

impl TryFrom<&cache_core::ArtifactInfo> for pc::ArtifactInfo {
    type Error = ConvertError;

    fn try_from(a: &cache_core::ArtifactInfo) -> Result<pc::ArtifactInfo> {
        let secret = match &a.secret {
            None => None,
            Some(v) => GoRead::of(v)
                .and_then(|r| r.map(secret_read).transpose())
                .map_err(|e| e.within("Secret"))?,
        };
        Ok(pc::ArtifactInfo {
            schema_version: i32::try_from(a.schema_version).map_err(|_| {
                ConvertError::new(format!("{} is out of range", a.schema_version))
                    .within("SchemaVersion")
            })?,
            architecture: a.architecture.clone(),
            // A `Created` that is not an RFC 3339 time has no place in the protocol.
            created: (!a.created.is_empty())
                .then(|| parse_rfc3339(&a.created))
                .flatten(),
            docker_version: a.docker_version.clone(),
            os: a.os.clone(),
            history_packages: packages_read(&a.history_packages, "HistoryPackages")?,
            secret,
        })
    }
}
