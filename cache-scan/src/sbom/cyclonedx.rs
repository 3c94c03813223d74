//! CycloneDX 1.6 JSON.

use serde_json::{Value, json};

use super::{Node, SbomMeta, Tree, properties};
use crate::{Report, analyser::license_id};

const NS: &str = "aquasecurity:trivy:";

/// The report as a CycloneDX 1.6 JSON document: the image as the metadata component,
/// components for the OS (`operating-system`), each application (`application`) and
/// each package (`library`, with `purl`, `licenses` and properties), and a dependency
/// graph image → OS and applications → their packages → the packages they depend on.
pub fn cyclonedx(report: &Report, meta: &SbomMeta) -> Value {
    let tree = Tree::of(report);
    let is_image = !report.image_id.is_empty();
    let root_ref = if is_image {
        report.image_id.clone()
    } else {
        format!("filesystem:{}", report.artifact_name)
    };
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    let mut root_deps = Vec::new();
    if let Some(os) = &report.os {
        let os_ref = format!("os:{}:{}", os.family, os.name);
        let mut component = json!({
            "bom-ref": os_ref,
            "type": "operating-system",
            "name": os.family,
            "version": os.name,
            "properties": [
                {"name": format!("{NS}Class"), "value": "os-pkgs"},
                {"name": format!("{NS}Type"), "value": os.family},
            ],
        });
        // An OS without a release (`none`) has no version, as the reference writes it.
        if os.name.is_empty()
            && let Some(c) = component.as_object_mut()
        {
            c.remove("version");
        }
        components.push(component);
        dependencies.push(json!({"ref": os_ref, "dependsOn": refs(&tree.os)}));
        root_deps.push(os_ref);
    }
    for (app, nodes) in &tree.apps {
        let app_ref = format!("app:{}:{}", app.app_type, app.target());
        components.push(json!({
            "bom-ref": app_ref,
            "type": "application",
            "name": app.target(),
            "properties": [
                {"name": format!("{NS}Class"), "value": "lang-pkgs"},
                {"name": format!("{NS}Type"), "value": app.app_type},
            ],
        }));
        dependencies.push(json!({"ref": app_ref, "dependsOn": refs(nodes)}));
        root_deps.push(app_ref);
    }
    for node in tree.all() {
        components.push(component(node));
    }
    for group in std::iter::once(&tree.os).chain(tree.apps.iter().map(|(_, n)| n)) {
        for (node, deps) in group.iter().zip(Tree::depends(group)) {
            dependencies.push(json!({"ref": node.reference, "dependsOn": deps}));
        }
    }
    root_deps.sort();
    dependencies.insert(0, json!({"ref": root_ref, "dependsOn": root_deps}));
    let mut image_props = Vec::new();
    if is_image {
        image_props.push(json!({"name": format!("{NS}ImageID"), "value": report.image_id}));
    }
    image_props.extend(
        report
            .diff_ids
            .iter()
            .map(|d| json!({"name": format!("{NS}DiffID"), "value": d})),
    );
    image_props.extend(
        report
            .repo_tags
            .iter()
            .map(|t| json!({"name": format!("{NS}RepoTag"), "value": t})),
    );
    image_props.push(json!({"name": format!("{NS}SchemaVersion"), "value": "2"}));
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", meta.uuid),
        "version": 1,
        "metadata": {
            "timestamp": meta.timestamp,
            "tools": {"components": [{"type": "application", "group": "scancache", "name": "scancache", "version": meta.tool_version}]},
            "component": {
                "bom-ref": root_ref,
                "type": if is_image { "container" } else { "application" },
                "name": report.artifact_name,
                "properties": image_props,
            },
        },
        "components": components,
        "dependencies": dependencies,
    })
}

fn refs(nodes: &[Node<'_>]) -> Vec<String> {
    let mut r: Vec<String> = nodes.iter().map(|n| n.reference.clone()).collect();
    r.sort();
    r
}

fn component(node: &Node<'_>) -> Value {
    let p = &node.pkg.package;
    let mut c = json!({
        "bom-ref": node.reference,
        "type": "library",
        "name": p.name,
        "version": super::version(node.pkg),
        "properties": properties(node)
            .into_iter()
            .map(|(k, v)| json!({"name": format!("{NS}{k}"), "value": v}))
            .collect::<Vec<_>>(),
    });
    if let Some(purl) = p
        .identifier
        .as_ref()
        .map(|i| &i.purl)
        .filter(|p| !p.is_empty())
    {
        c["purl"] = json!(purl);
    }
    if !p.licenses.is_empty() {
        c["licenses"] = Value::Array(
            p.licenses
                .iter()
                .map(|l| match license_id(l) {
                    Some(id) => json!({"license": {"id": id}}),
                    None => json!({"license": {"name": l}}),
                })
                .collect(),
        );
    }
    c
}
