//! The `Scan` RPC: the image's layers, read from the cache and applied by the same code
//! as `scancache image` ([`cache_scan::apply`]), turned into the results the
//! reference's scan service gives — without vulnerabilities, which need a database this
//! server does not have. A directory's or an SBOM's scan is one blob and no artifact
//! entry, which the reference's client does not write for them.
//!
//! Results, in the reference's order: OS packages (`os-pkgs`) and language packages
//! (`lang-pkgs`, one result per file, individual package files of one type gathered
//! under the type's name such as `Node.js`), every package with its PURL, when the
//! `sbom` scanner is on; configuration
//! checks (`config`) with `misconfig`; the secrets the client found (`secret`) with
//! `secret`; licenses (`license`, and `license-file` with `license_full`) with `license`,
//! classified by the categories the client sends; custom resources (`custom`).

use std::collections::HashSet;

use axum::{extract::State, response::Response};
use cache_core::BlobInfo;
use cache_scan::{
    AGGREGATED_TYPES, Applied, EntryKind, LayerView, ReportApplication, ReportPackage, apply,
};
use serde_json::Value;

use crate::{
    ServerState,
    convert::{ConvertError, misconfiguration_read_value, read_value},
    license::Classifier,
    proto::{
        cache as pc,
        common::{self as pb, Severity},
        scanner::{ScanOptions, ScanRequest, ScanResponse, ScanResult},
    },
    service::{artifact_id, blob_ids},
    twirp::{Code, TwirpError, TwirpRequest, reply},
};

/// The answer to a scan that asks for vulnerabilities.
pub const NO_VULN_DB: &str = "this server has no vulnerability database; scan with --scanners secret,license (or without vuln)";

/// Application types whose packages come one file each and are reported together, with
/// the name their result gets.
const AGGREGATED: [(&str, &str); 5] = [
    ("python-pkg", "Python"),
    ("conda-pkg", "Conda"),
    ("gemspec", "Ruby"),
    ("node-pkg", "Node.js"),
    ("jar", "Java"),
];

/// Result targets of application types when the application has no file path.
fn pkg_target(app_type: &str) -> Option<&'static str> {
    AGGREGATED
        .iter()
        .find(|(t, _)| *t == app_type)
        .map(|(_, name)| *name)
        .or((app_type == "k8s").then_some("Kubernetes"))
}

/// Every relationship the reference knows, which is also what reporting all means.
const ALL_RELATIONSHIPS: [&str; 5] = ["unknown", "root", "workspace", "direct", "indirect"];

pub(crate) async fn scan(
    State(s): State<ServerState>,
    req: TwirpRequest<ScanRequest>,
) -> Result<Response, TwirpError> {
    let codec = req.codec;
    let request = req.message;
    let options = request.options.clone().unwrap_or_default();
    if options.scanners.iter().any(|s| s == "vuln") {
        return Err(TwirpError::new(Code::FailedPrecondition, NO_VULN_DB));
    }
    let artifact = artifact_id(&request.artifact_id, "artifact_id")?;
    let ids = blob_ids(&request.blob_ids, "blob_ids")?;
    let blobs = s
        .cache()
        .get_blobs(&ids)
        .await
        .map_err(|e| s.backend_error(e))?;
    let mut found = Vec::with_capacity(blobs.len());
    for (id, blob) in ids.iter().zip(blobs) {
        let blob = blob
            .ok_or_else(|| TwirpError::new(Code::NotFound, format!("layer cache missing: {id}")))?;
        // Every stored item must have the shape the answer is built from.
        pc::BlobInfo::try_from(&blob).map_err(|e| corrupt("blob", id, &e))?;
        found.push(blob);
    }
    // A directory or SBOM has no artifact entry (the reference's client writes none for
    // them): the scan goes on without one, as the reference's server's does.
    let image = match s
        .cache()
        .get_artifact(&artifact)
        .await
        .map_err(|e| s.backend_error(e))?
    {
        Some(image) => {
            pc::ArtifactInfo::try_from(&image).map_err(|e| corrupt("artifact", &artifact, &e))?
        }
        None => pc::ArtifactInfo::default(),
    };
    let answer = Scan::new(&request.target, &options, &found)
        .answer(&image)
        .map_err(|e| {
            TwirpError::new(Code::Internal, format!("cannot build the scan result: {e}"))
        })?;
    Ok(reply(codec, &answer))
}

fn corrupt(kind: &str, id: &dyn std::fmt::Display, e: &ConvertError) -> TwirpError {
    TwirpError::new(Code::Internal, format!("corrupt {kind} entry {id}: {e}"))
}

/// One scan's inputs and what applying its layers gave.
struct Scan<'a> {
    target: &'a str,
    options: &'a ScanOptions,
    blobs: &'a [BlobInfo],
    applied: Applied,
    scanners: HashSet<&'a str>,
}

type Result<T, E = ConvertError> = std::result::Result<T, E>;

impl<'a> Scan<'a> {
    fn new(target: &'a str, options: &'a ScanOptions, blobs: &'a [BlobInfo]) -> Scan<'a> {
        let views: Vec<LayerView<'_>> = blobs
            .iter()
            .map(|b| LayerView {
                diff_id: &b.diff_id,
                digest: (!b.digest.is_empty()).then_some(b.digest.as_str()),
                blob: b,
            })
            .collect();
        let applied = apply(&views);
        Scan {
            target,
            options,
            blobs,
            applied,
            scanners: options.scanners.iter().map(String::as_str).collect(),
        }
    }

    fn on(&self, scanner: &str) -> bool {
        self.scanners.contains(scanner)
    }

    fn pkg_type(&self, t: &str) -> bool {
        self.options.pkg_types.iter().any(|p| p == t)
    }

    /// The layer at an index, as results name it.
    fn layer(&self, index: usize, with_created_by: bool) -> Option<pb::Layer> {
        self.blobs.get(index).map(|b| pb::Layer {
            digest: b.digest.clone(),
            diff_id: b.diff_id.clone(),
            created_by: if with_created_by {
                b.created_by.clone()
            } else {
                String::new()
            },
            size: 0,
        })
    }

    fn answer(self, image: &pc::ArtifactInfo) -> Result<ScanResponse> {
        let os = self.os();
        let os_packages = self.os_packages()?;
        let apps = self.applications()?;
        let mut results = Vec::new();
        if self.on("sbom") {
            // As the reference: every detected OS has an OS-packages result, `none` (packages
            // without an OS) included, except one whose packages are all language ones.
            if let Some(os) = os
                .as_ref()
                .filter(|o| !o.family.is_empty() && o.family != "activestate")
            {
                let name = if os.extended {
                    format!("{}-ESM", os.name)
                } else {
                    os.name.clone()
                };
                results.push(ScanResult {
                    target: format!("{} ({} {})", self.target, os.family, name),
                    class: "os-pkgs".into(),
                    r#type: os.family.clone(),
                    packages: if self.pkg_type("os") {
                        os_packages.clone()
                    } else {
                        Vec::new()
                    },
                    ..ScanResult::default()
                });
            }
            if self.pkg_type("library") {
                let mut lang: Vec<ScanResult> = apps
                    .iter()
                    .filter(|(_, _, pkgs)| !pkgs.is_empty())
                    .map(|(app_type, file_path, pkgs)| ScanResult {
                        target: target_name(app_type, file_path),
                        class: "lang-pkgs".into(),
                        r#type: app_type.clone(),
                        packages: pkgs.clone(),
                        ..ScanResult::default()
                    })
                    .collect();
                lang.sort_by(|a, b| a.target.cmp(&b.target));
                results.extend(lang);
            }
        }
        if self.on("misconfig") || self.on("rbac") {
            results.extend(self.misconfigurations()?);
        }
        if self.on("secret") {
            results.extend(self.secrets(image)?);
        }
        if self.on("license") {
            results.extend(self.licenses(&os_packages, &apps)?);
        }
        let custom = self.custom_resources()?;
        if !custom.is_empty() {
            results.push(ScanResult {
                class: "custom".into(),
                custom_resources: custom,
                ..ScanResult::default()
            });
        }
        let layers = self
            .blobs
            .iter()
            .map(|b| pb::Layer {
                digest: b.digest.clone(),
                diff_id: b.diff_id.clone(),
                created_by: b.created_by.clone(),
                size: b.size,
            })
            .filter(|l| *l != pb::Layer::default())
            .collect();
        Ok(ScanResponse {
            os: os.or_else(|| Some(pb::Os::default())),
            results,
            layers,
        })
    }

    /// The image's OS as reports name it ([`cache_scan::Applied::reported_os`]); a
    /// `distro` option overrides a detected one.
    fn os(&self) -> Option<pb::Os> {
        let mut os = self.applied.reported_os().map(|o| pb::Os {
            eosl: false,
            extended: o
                .extra
                .get("extended")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            supplier: o
                .extra
                .get("Supplier")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            family: o.family,
            name: o.name,
        });
        if let (Some(distro), Some(_)) = (&self.options.distro, &os)
            && !distro.family.is_empty()
        {
            os = Some(pb::Os {
                family: distro.family.clone(),
                name: distro.name.clone(),
                ..pb::Os::default()
            });
        }
        os
    }

    /// The relationships to report, or `None` for all.
    fn relationships(&self) -> Option<HashSet<i32>> {
        let wanted: HashSet<&str> = self
            .options
            .pkg_relationships
            .iter()
            .map(String::as_str)
            .collect();
        if wanted.is_empty() || ALL_RELATIONSHIPS.iter().all(|r| wanted.contains(r)) {
            return None;
        }
        Some(
            wanted
                .iter()
                .filter_map(|r| crate::convert::relationship_number(r))
                .collect(),
        )
    }

    /// A package for a result, with the layer that installed it.
    fn package(p: &ReportPackage) -> Result<pb::Package> {
        let mut msg = pb::Package::try_from(&p.package)?;
        if msg.layer.is_none() {
            msg.layer = Some(pb::Layer {
                digest: p.layer_digest.clone().unwrap_or_default(),
                diff_id: p.layer_diff_id.clone(),
                ..pb::Layer::default()
            });
        }
        Ok(msg)
    }

    /// OS packages (with their PURLs and the licenses dpkg copyright files give them, as
    /// applied), filtered by relationship.
    fn os_packages(&self) -> Result<Vec<pb::Package>> {
        let keep = self.relationships();
        let mut out = Vec::with_capacity(self.applied.packages.len());
        for p in &self.applied.packages {
            let msg = Scan::package(p)?;
            if keep.as_ref().is_none_or(|k| k.contains(&msg.relationship)) {
                out.push(msg);
            }
        }
        Ok(out)
    }

    /// Applications as `(type, file path, packages)` (individual package files gathered
    /// per type, as applied; packages in the reference's order, each with its PURL),
    /// development dependencies left out unless asked for, filtered by relationship.
    fn applications(&self) -> Result<Vec<(String, String, Vec<pb::Package>)>> {
        let keep = self.relationships();
        let mut out = Vec::new();
        for ReportApplication {
            app_type,
            file_path,
            packages,
        } in &self.applied.applications
        {
            let aggregated = AGGREGATED_TYPES.contains(&app_type.as_str());
            let mut pkgs = Vec::with_capacity(packages.len());
            for p in packages {
                let mut msg = Scan::package(p)?;
                // An individual package file's packages name their file (lock-file
                // packages carry it only through their application).
                if msg.file_path.is_empty() && aggregated {
                    msg.file_path.clone_from(&p.file_path);
                }
                if keep.as_ref().is_none_or(|k| k.contains(&msg.relationship)) {
                    pkgs.push(msg);
                }
            }
            if !self.options.include_dev_deps {
                let dev: HashSet<String> = pkgs
                    .iter()
                    .filter(|p| p.dev)
                    .map(|p| p.id.clone())
                    .collect();
                pkgs.retain(|p| !p.dev);
                for p in &mut pkgs {
                    if matches!(p.relationship, 1 | 2) {
                        p.depends_on.retain(|d| !dev.contains(d));
                    }
                }
            }
            out.push((app_type.clone(), file_path.clone(), pkgs));
        }
        Ok(out)
    }

    fn misconfigurations(&self) -> Result<Vec<ScanResult>> {
        let mut results = Vec::new();
        for e in self
            .applied
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::Misconfiguration)
        {
            let m = misconfiguration_read_value(&e.value)?;
            let layer = self.layer(e.layer, false);
            let mut detected = Vec::new();
            for (list, default, status) in [
                (&m.failures, Severity::Critical, "FAIL"),
                (&m.warnings, Severity::Medium, "FAIL"),
                (&m.successes, Severity::Unknown, "PASS"),
            ] {
                for r in list {
                    detected.push(detected_misconfiguration(r, default, status, layer.clone()));
                }
            }
            results.push(ScanResult {
                target: m.file_path.clone(),
                class: "config".into(),
                r#type: m.file_type.clone(),
                misconfigurations: detected,
                ..ScanResult::default()
            });
        }
        results.sort_by(|a, b| a.target.cmp(&b.target));
        Ok(results)
    }

    fn secrets(&self, image: &pc::ArtifactInfo) -> Result<Vec<ScanResult>> {
        let mut results = Vec::new();
        for secret in &self.applied.secrets {
            let mut findings = Vec::new();
            for (layer, f) in &secret.findings {
                let mut finding: pb::SecretFinding =
                    read_value(f, crate::convert::secret_finding_read)?;
                finding.layer = self.layer(*layer, true);
                findings.push(finding);
            }
            results.push(ScanResult {
                target: secret.file_path.clone(),
                class: "secret".into(),
                secrets: findings,
                ..ScanResult::default()
            });
        }
        // Secrets in the image config are reported under the image's name.
        if let Some(s) = &image.secret {
            results.push(ScanResult {
                target: self.target.to_owned(),
                class: "secret".into(),
                secrets: s.findings.clone(),
                ..ScanResult::default()
            });
        }
        Ok(results)
    }

    fn licenses(
        &self,
        os_packages: &[pb::Package],
        apps: &[(String, String, Vec<pb::Package>)],
    ) -> Result<Vec<ScanResult>> {
        let classifier = Classifier::new(&self.options.license_categories);
        let detected = |name: &str, pkg: &str, file: &str| {
            let (category, severity) = classifier.classify(name);
            pb::DetectedLicense {
                severity: severity as i32,
                category: crate::convert::category_number(category),
                pkg_name: pkg.to_owned(),
                file_path: file.to_owned(),
                name: name.to_owned(),
                confidence: 1.0,
                link: String::new(),
                text: String::new(),
            }
        };
        let mut results = Vec::new();
        if self.pkg_type("os") && !os_packages.is_empty() {
            let licenses = os_packages
                .iter()
                .flat_map(|p| p.licenses.iter().map(|l| detected(l, &p.name, "")))
                .collect();
            results.push(ScanResult {
                target: "OS Packages".into(),
                class: "license".into(),
                licenses,
                ..ScanResult::default()
            });
        }
        if self.pkg_type("library") {
            for (app_type, file_path, pkgs) in apps {
                let licenses: Vec<pb::DetectedLicense> = pkgs
                    .iter()
                    .flat_map(|p| {
                        let file = if p.file_path.is_empty() {
                            file_path.as_str()
                        } else {
                            p.file_path.as_str()
                        };
                        p.licenses.iter().map(move |l| (l, p, file))
                    })
                    .map(|(l, p, file)| detected(l, &p.name, file))
                    .collect();
                if !licenses.is_empty() {
                    results.push(ScanResult {
                        target: target_name(app_type, file_path),
                        class: "license".into(),
                        licenses,
                        ..ScanResult::default()
                    });
                }
            }
        }
        if self.options.license_full {
            let mut licenses = Vec::new();
            for e in self
                .applied
                .entries
                .iter()
                .filter(|e| e.kind == EntryKind::LicenseFile)
            {
                let file: pb::LicenseFile =
                    read_value(&e.value, crate::convert::license_file_read)?;
                for f in &file.fingings {
                    let (category, severity) = classifier.classify(&f.name);
                    licenses.push(pb::DetectedLicense {
                        severity: severity as i32,
                        category: crate::convert::category_number(category),
                        pkg_name: String::new(),
                        file_path: file.file_path.clone(),
                        name: f.name.clone(),
                        confidence: f.confidence,
                        link: f.link.clone(),
                        text: String::new(),
                    });
                }
            }
            results.push(ScanResult {
                target: "Loose File License(s)".into(),
                class: "license-file".into(),
                licenses,
                ..ScanResult::default()
            });
        }
        Ok(results)
    }

    fn custom_resources(&self) -> Result<Vec<pb::CustomResource>> {
        let mut out = Vec::new();
        for e in self
            .applied
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::CustomResource)
        {
            let mut c: pb::CustomResource =
                read_value(&e.value, crate::convert::custom_resource_read)?;
            if c.layer.is_none() {
                c.layer = self.layer(e.layer, false);
            }
            out.push(c);
        }
        Ok(out)
    }
}

/// The target of a language package result.
fn target_name(app_type: &str, file_path: &str) -> String {
    match pkg_target(app_type) {
        Some(name) if file_path.is_empty() => name.to_owned(),
        _ => file_path.to_owned(),
    }
}

/// One check's outcome as a result's misconfiguration.
fn detected_misconfiguration(
    r: &pb::MisconfResult,
    default: Severity,
    status: &str,
    layer: Option<pb::Layer>,
) -> pb::DetectedMisconfiguration {
    let policy = r.policy_metadata.clone().unwrap_or_default();
    let severity = match policy.severity.as_str() {
        "UNKNOWN" => Severity::Unknown,
        "LOW" => Severity::Low,
        "MEDIUM" => Severity::Medium,
        "HIGH" => Severity::High,
        "CRITICAL" => Severity::Critical,
        _ => default,
    };
    let message = match r.message.trim() {
        "" => "No issues found".to_owned(),
        m => m.to_owned(),
    };
    let mut references = policy.references.clone();
    let mut primary_url = String::new();
    if r.namespace.is_empty() || r.namespace.starts_with("builtin.") {
        primary_url = format!(
            "https://avd.aquasec.com/misconfig/{}",
            policy.id.to_lowercase()
        );
        references.push(primary_url.clone());
    }
    if primary_url.is_empty() {
        primary_url = references.first().cloned().unwrap_or_default();
    }
    pb::DetectedMisconfiguration {
        r#type: policy.r#type.clone(),
        id: policy.id.clone(),
        title: policy.title.clone(),
        description: policy.description.clone(),
        message,
        namespace: r.namespace.clone(),
        resolution: policy.recommended_actions.clone(),
        severity: severity as i32,
        primary_url,
        references,
        status: status.to_owned(),
        layer,
        cause_metadata: r.cause_metadata.clone(),
        avd_id: policy.adv_id.clone(),
        query: r.query.clone(),
        aliases: policy.aliases.clone(),
    }
}
