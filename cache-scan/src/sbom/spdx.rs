//! SPDX 2.3 JSON.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Node, SbomMeta, Tree, properties};
use crate::{Report, analyser::license_id};

/// The report as an SPDX 2.3 JSON document: the image (`SPDXRef-ContainerImage-…`), the
/// OS (`SPDXRef-OperatingSystem-…`), each application (`SPDXRef-Application-…`) and
/// each package (`SPDXRef-Package-…`, with its PURL as an external reference, its
/// declared licenses, and properties as `Key: value` annotations), related by
/// `DESCRIBES`, `CONTAINS` and `DEPENDS_ON`. A license name that is not an SPDX ID is a
/// `LicenseRef-…` with its text in `hasExtractedLicensingInfos`.
pub fn spdx(report: &Report, meta: &SbomMeta) -> Value {
    let tree = Tree::of(report);
    // An image is a container; a directory (or an SBOM of one) is its source.
    let root_package = if report.image_id.is_empty() {
        let root = format!("SPDXRef-Filesystem-{}", short(&report.artifact_name));
        json!({
            "SPDXID": root,
            "name": report.artifact_name,
            "downloadLocation": "NONE",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "SOURCE",
            "annotations": annotations(meta, &[("SchemaVersion", "2".to_owned())]),
        })
    } else {
        json!({
            "SPDXID": format!("SPDXRef-ContainerImage-{}", short(&report.image_id)),
            "name": report.artifact_name,
            "downloadLocation": "NONE",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "annotations": annotations(meta, &[("ImageID", report.image_id.clone())]),
        })
    };
    let root = root_package["SPDXID"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut packages = vec![root_package];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": root,
    })];
    let mut extracted: Vec<(String, String)> = Vec::new();
    let mut contain = |parent: &str,
                       nodes: &[Node<'_>],
                       packages: &mut Vec<Value>,
                       relationships: &mut Vec<Value>| {
        let ids: Vec<String> = nodes.iter().map(|n| package_id(&n.reference)).collect();
        for (node, id) in nodes.iter().zip(&ids) {
            packages.push(package(node, id, meta, &mut extracted));
            relationships.push(json!({"spdxElementId": parent, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
        }
        for (node, deps) in nodes.iter().zip(Tree::depends(nodes)) {
            for d in deps {
                relationships.push(json!({
                    "spdxElementId": package_id(&node.reference),
                    "relationshipType": "DEPENDS_ON",
                    "relatedSpdxElement": package_id(&d),
                }));
            }
        }
    };
    if let Some(os) = &report.os {
        let id = format!(
            "SPDXRef-OperatingSystem-{}",
            short(&format!("{}:{}", os.family, os.name))
        );
        let mut package = json!({
            "SPDXID": id,
            "name": os.family,
            "versionInfo": os.name,
            "downloadLocation": "NONE",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "OPERATING_SYSTEM",
            "annotations": annotations(meta, &[("Class", "os-pkgs".into()), ("Type", os.family.clone())]),
        });
        // An OS without a release (`none`) has no version.
        if os.name.is_empty()
            && let Some(p) = package.as_object_mut()
        {
            p.remove("versionInfo");
        }
        packages.push(package);
        relationships.push(json!({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
        contain(&id, &tree.os, &mut packages, &mut relationships);
    }
    for (app, nodes) in &tree.apps {
        let id = format!(
            "SPDXRef-Application-{}",
            short(&format!("{}:{}", app.app_type, app.target()))
        );
        packages.push(json!({
            "SPDXID": id,
            "name": app.target(),
            "downloadLocation": "NONE",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "APPLICATION",
            "annotations": annotations(meta, &[("Class", "lang-pkgs".into()), ("Type", app.app_type.clone())]),
        }));
        relationships.push(json!({"spdxElementId": root, "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
        contain(&id, nodes, &mut packages, &mut relationships);
    }
    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": report.artifact_name,
        "documentNamespace": format!("urn:uuid:{}", meta.uuid),
        "creationInfo": {
            "creators": [format!("Tool: scancache-{}", meta.tool_version)],
            "created": meta.timestamp,
        },
        "packages": packages,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        extracted.sort();
        extracted.dedup();
        doc["hasExtractedLicensingInfos"] = Value::Array(
            extracted
                .into_iter()
                .map(|(id, text)| json!({"licenseId": id, "name": text, "extractedText": text}))
                .collect(),
        );
    }
    doc
}

/// The first 16 hex digits of the SHA-256 of `s`: an ID part made of safe characters.
fn short(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()).get(..8).unwrap_or_default())
}

fn package_id(reference: &str) -> String {
    format!("SPDXRef-Package-{}", short(reference))
}

fn annotations(meta: &SbomMeta, props: &[(&str, String)]) -> Vec<Value> {
    props
        .iter()
        .map(|(k, v)| {
            json!({
                "annotator": format!("Tool: scancache-{}", meta.tool_version),
                "annotationDate": meta.timestamp,
                "annotationType": "OTHER",
                "comment": format!("{k}: {v}"),
            })
        })
        .collect()
}

fn package(
    node: &Node<'_>,
    id: &str,
    meta: &SbomMeta,
    extracted: &mut Vec<(String, String)>,
) -> Value {
    let p = &node.pkg.package;
    let declared = if p.licenses.is_empty() {
        "NONE".to_owned()
    } else {
        p.licenses
            .iter()
            .map(|l| match license_id(l) {
                Some(id) => id,
                None => {
                    let id = format!("LicenseRef-{}", short(l));
                    extracted.push((id.clone(), l.clone()));
                    id
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let props: Vec<(&str, String)> = properties(node);
    let mut v = json!({
        "SPDXID": id,
        "name": p.name,
        "versionInfo": super::version(node.pkg),
        "downloadLocation": "NONE",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": declared,
        "primaryPackagePurpose": "LIBRARY",
        "annotations": annotations(meta, &props),
    });
    if let Some(purl) = p
        .identifier
        .as_ref()
        .map(|i| &i.purl)
        .filter(|p| !p.is_empty())
    {
        v["externalRefs"] = json!([{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}]);
    }
    if !p.src_name.is_empty() {
        v["sourceInfo"] = json!(format!(
            "built package from: {} {}",
            p.src_name, p.src_version
        ));
    }
    v
}
