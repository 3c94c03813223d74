//! `node-pkg`: `package.json`, anywhere in the image (not only under `node_modules`),
//! read as the reference's Go decoder reads it: keys matched without regard to case,
//! the last of a repeated key winning, `null` as empty, the first JSON value only.
//!
//! A file counts when its `name` and `version` are both set and the name is URL-safe
//! (`[@scope/]name` of `A-Za-z0-9-._`). `license` may be a string, a legacy
//! `{"type": …}` object or an array of them. A wrongly typed `name`, `version` or
//! dependency map makes the file unparsable, as for the reference.

use std::fmt;

use cache_core::Package;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::Skip;
use crate::analyser::license;

#[derive(Default)]
struct PackageJson {
    name: String,
    version: String,
    license: Option<Value>,
}

impl<'de> de::Deserialize<'de> for PackageJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PackageJson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a package.json object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PackageJson, A::Error> {
                let mut p = PackageJson::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.to_ascii_lowercase().as_str() {
                        "name" => p.name = map.next_value::<Option<String>>()?.unwrap_or_default(),
                        "version" => {
                            p.version = map.next_value::<Option<String>>()?.unwrap_or_default();
                        }
                        "license" => p.license = Some(map.next_value()?),
                        "dependencies" | "optionaldependencies" | "devdependencies" => {
                            let _: Option<std::collections::HashMap<String, Option<String>>> =
                                map.next_value()?;
                        }
                        _ => {
                            let _: IgnoredAny = map.next_value()?;
                        }
                    }
                }
                Ok(p)
            }
        }
        d.deserialize_map(V)
    }
}

/// The package a `package.json` describes; none without a name or a version.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let p: PackageJson = super::json::first(bytes)?;
    // A name that is not URL-safe (`rxjs/ajax` of a bundler hint) is no package; the
    // reference rejects such a file too, so it is not worth a warning.
    if !valid_name(&p.name) || p.name.is_empty() || p.version.is_empty() {
        return Ok(Vec::new());
    }
    let names = p.license.as_ref().map(license_names).unwrap_or_default();
    Ok(vec![Package {
        id: format!("{}@{}", p.name, p.version),
        licenses: license::normalize_all(names),
        name: p.name,
        version: p.version,
        ..Package::default()
    }])
}

/// `^(@[A-Za-z0-9-._]+/)?[A-Za-z0-9-._]+$`, or empty.
fn valid_name(name: &str) -> bool {
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
    };
    if name.is_empty() {
        return true;
    }
    match name.strip_prefix('@') {
        Some(rest) => rest
            .split_once('/')
            .is_some_and(|(scope, n)| ok(scope) && ok(n)),
        None => ok(name),
    }
}

fn license_names(v: &Value) -> Vec<String> {
    let type_of = |o: &serde_json::Map<String, Value>| -> Option<Option<String>> {
        // Go's decoder matches `type` in any case; a non-string type fails the shape.
        let mut found = None;
        for (k, v) in o {
            if k.eq_ignore_ascii_case("type") {
                found = Some(match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    _ => return None,
                });
            }
        }
        Some(found.flatten())
    };
    match v {
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        Value::Object(o) => type_of(o)
            .flatten()
            .filter(|t| !t.is_empty())
            .into_iter()
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::Object(o) => match type_of(o) {
                        Some(t) => out.extend(t.filter(|t| !t.is_empty())),
                        None => return Vec::new(),
                    },
                    Value::Null => {}
                    _ => return Vec::new(),
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(json: &str) -> Result<Vec<(String, Vec<String>)>, Skip> {
        parse(json.as_bytes()).map(|ps| ps.into_iter().map(|p| (p.id, p.licenses)).collect())
    }

    #[test]
    fn package_json_shapes() {
        let one = |id: &str, l: &[&str]| {
            Ok(vec![(
                id.to_owned(),
                l.iter().map(|s| (*s).to_owned()).collect(),
            )])
        };
        assert_eq!(
            ids(r#"{"name":"rxjs","version":"7.8.1","license":"Apache-2.0"}"#),
            one("rxjs@7.8.1", &["Apache-2.0"])
        );
        assert_eq!(
            ids(r#"{"name":"a","version":"1","license":{"type":"ISC","url":"x"}}"#),
            one("a@1", &["ISC"])
        );
        assert_eq!(
            ids(r#"{"name":"@s/p","version":"0.0.1","license":[{"type":"MIT"},{"type":"BSD"}]}"#),
            one("@s/p@0.0.1", &["MIT", "BSD-3-Clause"])
        );
        assert_eq!(
            ids(r#"{"NAME":"a","Version":"1"} trailing"#),
            one("a@1", &[])
        );
        assert_eq!(
            ids(r#"{"name":"a","version":"1","name":"b"}"#),
            one("b@1", &[])
        );
        assert_eq!(ids(r#"{"name":"rxjs/ajax","version":"1"}"#), Ok(vec![]));
        assert_eq!(ids(r#"{"name":"ajax"}"#), Ok(vec![]));
        assert_eq!(ids(r#"{"name":null,"version":"1"}"#), Ok(vec![]));
        assert!(ids(r#"{"name":"bad","version":1}"#).is_err());
        assert!(ids(r#"{"name":"a","version":"1","dependencies":{"x":{"y":1}}}"#).is_err());
        assert!(ids("[1]").is_err());
        // Deep nesting: an error where the analyser decodes it, never a crash.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(ids(&format!(r#"{{"name":"a","version":"1","license":{deep}}}"#)).is_err());
        let _ = ids(&format!(r#"{{"name":"a","version":"1","x":{deep}}}"#));
    }
}
