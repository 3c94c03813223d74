//! `pom`: `pom.xml`, the coordinates it declares itself: the project
//! (`groupId:artifactId`, the group and version inherited from `<parent>` when not
//! given) and each dependency of scope `compile`, `runtime` or none that is not
//! optional, its version given directly, through a property of the same file
//! (`${name}`, `${project.version}`, `${project.groupId}`, `${project.parent.version}`)
//! or by the file's own `dependencyManagement`. Nothing is fetched and no other file is
//! read: a dependency whose version is not known from this file is left out.

use std::collections::HashMap;

use cache_core::Package;
use roxmltree::{Document, Node};

use super::Skip;

/// The project and its declared dependencies, IDs `group:artifact:version`.
pub(crate) fn parse(text: &str) -> Result<Vec<Package>, Skip> {
    let doc = Document::parse(text).map_err(|e| format!("not valid XML: {e}"))?;
    let project = doc.root_element();
    if project.tag_name().name() != "project" {
        return Err("the root element is not <project>".into());
    }
    let parent = child(project, "parent");
    let parent_text = |name: &str| parent.and_then(|p| text_of(p, name)).unwrap_or_default();
    let group = text_of(project, "groupId").unwrap_or_else(|| parent_text("groupId"));
    let artifact = text_of(project, "artifactId").unwrap_or_default();
    let version = text_of(project, "version").unwrap_or_else(|| parent_text("version"));
    let mut props: HashMap<String, String> = HashMap::new();
    if let Some(p) = child(project, "properties") {
        for e in p.children().filter(Node::is_element) {
            props.insert(
                e.tag_name().name().to_owned(),
                e.text().unwrap_or_default().trim().to_owned(),
            );
        }
    }
    props.insert("project.version".into(), version.clone());
    props.insert("project.groupId".into(), group.clone());
    props.insert("project.artifactId".into(), artifact.clone());
    props.insert("project.parent.version".into(), parent_text("version"));
    props.insert("project.parent.groupId".into(), parent_text("groupId"));
    let resolve = |s: &str| substitute(s, &props);
    let group = resolve(&group);
    let version = resolve(&version);

    let mut managed: HashMap<(String, String), String> = HashMap::new();
    if let Some(dm) = child(project, "dependencyManagement").and_then(|d| child(d, "dependencies"))
    {
        for d in dm.children().filter(|n| n.has_tag_name("dependency")) {
            let key = (
                resolve(&text_of(d, "groupId").unwrap_or_default()),
                resolve(&text_of(d, "artifactId").unwrap_or_default()),
            );
            if let Some(v) = text_of(d, "version") {
                managed.insert(key, resolve(&v));
            }
        }
    }

    let mut out = Vec::new();
    if !artifact.is_empty() {
        let mut root = coordinates(&group, &artifact, &version);
        root.relationship = "root".into();
        out.push(root);
    }
    let mut direct = Vec::new();
    if let Some(deps) = child(project, "dependencies") {
        for d in deps.children().filter(|n| n.has_tag_name("dependency")) {
            let scope = text_of(d, "scope").unwrap_or_default();
            let optional = text_of(d, "optional").is_some_and(|o| o == "true");
            if !matches!(scope.as_str(), "" | "compile" | "runtime") || optional {
                continue;
            }
            let g = resolve(&text_of(d, "groupId").unwrap_or_default());
            let a = resolve(&text_of(d, "artifactId").unwrap_or_default());
            let v = match text_of(d, "version") {
                Some(v) => resolve(&v),
                None => managed
                    .get(&(g.clone(), a.clone()))
                    .cloned()
                    .unwrap_or_default(),
            };
            if g.is_empty() || a.is_empty() || v.is_empty() || v.contains("${") {
                continue;
            }
            let mut p = coordinates(&g, &a, &v);
            p.relationship = "direct".into();
            direct.push(p.id.clone());
            out.push(p);
        }
    }
    if let Some(root) = out.first_mut().filter(|r| r.relationship == "root") {
        direct.sort();
        root.depends_on = direct;
    }
    Ok(out)
}

fn coordinates(group: &str, artifact: &str, version: &str) -> Package {
    let name = format!("{group}:{artifact}");
    Package {
        id: format!("{name}:{version}"),
        name,
        version: version.to_owned(),
        ..Package::default()
    }
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children().find(|c| c.has_tag_name(name))
}

fn text_of(n: Node<'_, '_>, name: &str) -> Option<String> {
    child(n, name).map(|c| c.text().unwrap_or_default().trim().to_owned())
}

/// `${name}` references replaced from `props`, repeatedly (at most 8 rounds, so
/// properties naming each other end).
fn substitute(s: &str, props: &HashMap<String, String>) -> String {
    let mut out = s.to_owned();
    for _ in 0..8 {
        let Some(start) = out.find("${") else { break };
        let Some(len) = out.get(start..).and_then(|r| r.find('}')) else {
            break;
        };
        let key = out
            .get(start + 2..start + len)
            .unwrap_or_default()
            .to_owned();
        let Some(value) = props.get(&key) else { break };
        out.replace_range(start..=start + len, value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_coordinates() {
        let pom = r#"<project xmlns="http://maven.apache.org/POM/4.0.0">
  <parent><groupId>com.example</groupId><artifactId>parent</artifactId><version>2.0</version></parent>
  <artifactId>app</artifactId>
  <properties><jackson.version>2.15.2</jackson.version></properties>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.9</version></dependency>
  </dependencies></dependencyManagement>
  <dependencies>
    <dependency><groupId>com.fasterxml.jackson.core</groupId><artifactId>jackson-databind</artifactId><version>${jackson.version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId></dependency>
    <dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>4.13.2</version><scope>test</scope></dependency>
    <dependency><groupId>x</groupId><artifactId>opt</artifactId><version>1</version><optional>true</optional></dependency>
    <dependency><groupId>x</groupId><artifactId>unknown</artifactId><version>${nowhere}</version></dependency>
    <dependency><groupId>${project.groupId}</groupId><artifactId>sibling</artifactId><version>${project.version}</version></dependency>
  </dependencies>
</project>"#;
        let got: Vec<String> = parse(pom).unwrap().into_iter().map(|p| p.id).collect();
        assert_eq!(
            got,
            [
                "com.example:app:2.0",
                "com.fasterxml.jackson.core:jackson-databind:2.15.2",
                "org.slf4j:slf4j-api:2.0.9",
                "com.example:sibling:2.0",
            ]
        );
        assert!(parse("<project><dependencies>").is_err());
        assert!(parse("<html/>").is_err());
    }
}
