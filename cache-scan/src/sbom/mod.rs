//! SBOM documents of a scanned image: CycloneDX 1.6 JSON ([`cyclonedx()`]) and SPDX 2.3
//! JSON ([`spdx()`]), built from a [`Report`]; and SBOMs read back ([`read()`],
//! [`scan_sbom()`]) or uploaded for a server to scan ([`upload_sbom()`]).
//!
//! Both describe the same tree: the image (a container), its OS, each language
//! application, and every package with its PURL, licenses, the layer it came from and
//! the dependencies between packages where the analysers know them. Package properties
//! use the reference scanner's names (`aquasecurity:trivy:PkgType`, `…:LayerDiffID`, …,
//! and in SPDX `Key: value` annotations), so the reference reads the documents back as
//! the same packages. Output is a function of the report and of [`SbomMeta`]: the
//! creation time and the document's serial number/namespace are the only parts that
//! change from run to run (see `docs/sbom.md`).

mod cyclonedx;
mod read;
mod spdx;

pub use cyclonedx::cyclonedx;
pub use read::{MAX_SBOM, ReadSbom, SBOM_ANALYSERS, read, scan_sbom, upload_sbom};
pub use spdx::spdx;

use std::collections::HashSet;

use crate::{Report, ReportPackage};

/// What varies between two SBOMs of the same image.
#[derive(Clone, Debug)]
pub struct SbomMeta {
    /// Creation time, RFC 3339 in UTC without fractions (`2025-06-01T12:00:00Z`).
    pub timestamp: String,
    /// A UUID (`xxxxxxxx-xxxx-4xxx-8xxx-xxxxxxxxxxxx`) naming this document: the CycloneDX
    /// serial number, the tail of the SPDX document namespace.
    pub uuid: String,
    /// The version of the tool writing it.
    pub tool_version: String,
}

/// One package placed in the tree, with a reference unique within the document.
pub(crate) struct Node<'a> {
    pub(crate) pkg: &'a ReportPackage,
    /// The result type (OS family or application type).
    pub(crate) kind: &'a str,
    pub(crate) reference: String,
}

/// The image's packages, grouped as in the report: OS packages, then each application.
pub(crate) struct Tree<'a> {
    pub(crate) os: Vec<Node<'a>>,
    pub(crate) apps: Vec<(&'a crate::ReportApplication, Vec<Node<'a>>)>,
}

impl<'a> Tree<'a> {
    pub(crate) fn of(report: &'a Report) -> Tree<'a> {
        let mut used = HashSet::new();
        let mut node = |pkg: &'a ReportPackage, kind: &'a str| {
            let id = pkg.package.identifier.as_ref();
            let base = id
                .map(|i| {
                    if i.purl.is_empty() {
                        i.uid.clone()
                    } else {
                        i.purl.clone()
                    }
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("{}@{}", pkg.package.name, pkg.package.version));
            let mut reference = base.clone();
            let mut n = 1;
            while !used.insert(reference.clone()) {
                n += 1;
                reference = format!("{base}#{n}");
            }
            Node {
                pkg,
                kind,
                reference,
            }
        };
        let family = report.os.as_ref().map_or("unknown", |o| o.family.as_str());
        let os = report.packages.iter().map(|p| node(p, family)).collect();
        let mut apps: Vec<&crate::ReportApplication> = report.applications.iter().collect();
        apps.sort_by_key(|a| (a.target(), a.app_type.clone()));
        let apps = apps
            .into_iter()
            .map(|a| {
                (
                    a,
                    a.packages
                        .iter()
                        .map(|p| node(p, a.app_type.as_str()))
                        .collect(),
                )
            })
            .collect();
        Tree { os, apps }
    }

    /// Every package node.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Node<'a>> {
        self.os
            .iter()
            .chain(self.apps.iter().flat_map(|(_, n)| n.iter()))
    }

    /// For one group of nodes, each node's dependencies as references within the group.
    pub(crate) fn depends(nodes: &[Node<'a>]) -> Vec<Vec<String>> {
        nodes
            .iter()
            .map(|n| {
                let mut refs: Vec<String> = n
                    .pkg
                    .package
                    .depends_on
                    .iter()
                    .filter_map(|id| {
                        nodes
                            .iter()
                            .find(|m| m.pkg.package.id == *id)
                            .map(|m| m.reference.clone())
                    })
                    .collect();
                refs.sort();
                refs.dedup();
                refs
            })
            .collect()
    }
}

/// The reference scanner's property names for one package, `(name, value)`.
pub(crate) fn properties(node: &Node<'_>) -> Vec<(&'static str, String)> {
    let p = &node.pkg.package;
    let mut out = Vec::new();
    let mut add = |k: &'static str, v: &str| {
        if !v.is_empty() {
            out.push((k, v.to_owned()));
        }
    };
    add("FilePath", &p.file_path);
    add("LayerDiffID", &node.pkg.layer_diff_id);
    add(
        "LayerDigest",
        node.pkg.layer_digest.as_deref().unwrap_or_default(),
    );
    add("PkgID", &p.id);
    add("PkgType", node.kind);
    add("SrcName", &p.src_name);
    add("SrcRelease", &p.src_release);
    add("SrcVersion", &p.src_version);
    if p.src_epoch != 0 {
        add("SrcEpoch", &p.src_epoch.to_string());
    }
    out.sort();
    out
}

/// `[epoch:]version[-release]`.
pub(crate) fn version(p: &ReportPackage) -> String {
    p.full_version()
}
