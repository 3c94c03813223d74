//! `conda-pkg`: a conda package's metadata, `…/envs/ENV/conda-meta/NAME-VERSION-BUILD.json`:
//! its `name`, `version` (both required) and `license`.

use cache_core::Package;
use serde::Deserialize;

use super::{Skip, json};
use crate::analyser::license;

#[derive(Deserialize)]
struct Meta {
    #[serde(default, deserialize_with = "json::nullable")]
    name: String,
    #[serde(default, deserialize_with = "json::nullable")]
    version: String,
    #[serde(default, deserialize_with = "json::nullable")]
    license: String,
}

/// The package a conda metadata file describes.
pub(crate) fn parse(bytes: &[u8]) -> Result<Package, Skip> {
    let m: Meta = json::first(bytes)?;
    if m.name.is_empty() || m.version.is_empty() {
        return Err("no name or no version".into());
    }
    Ok(Package {
        name: m.name,
        version: m.version,
        licenses: license::names(&m.license),
        ..Package::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conda_meta() {
        let p =
            parse(br#"{"name":"zlib","version":"1.2.13","license":"Zlib","depends":[]}"#).unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str(), p.licenses.as_slice()),
            ("zlib", "1.2.13", &["Zlib".to_owned()][..])
        );
        assert!(parse(br#"{"name":"zlib"}"#).is_err());
        assert!(parse(br#"{"name":"zlib","version":"1","license":["x"]}"#).is_err());
    }
}
