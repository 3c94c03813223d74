//! `pipenv`: `Pipfile.lock` (the `default` section; `develop` is not read).

use std::collections::BTreeMap;

use cache_core::Package;
use serde::Deserialize;

use super::{Skip, package};
use crate::analyser::lang::json;

#[derive(Deserialize)]
struct Lock {
    #[serde(default, deserialize_with = "json::nullable")]
    default: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default, deserialize_with = "json::nullable")]
    version: String,
}

/// The default packages, their `==` removed from the version.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let lock: Lock = json::first(bytes)?;
    Ok(lock
        .default
        .iter()
        .map(|(name, e)| package(name, e.version.trim_start_matches('=')))
        .collect())
}
