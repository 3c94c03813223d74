//! `composer`: `composer.lock` (`packages`, then `packages-dev` marked as development
//! packages; a package in both is a production one). A package's `DependsOn` lists
//! the locked packages its `require` names.

use cache_core::Package;

use super::Skip;
use crate::analyser::lang::composer;

/// The locked packages, by name.
pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<Package>, Skip> {
    let id = |name: &str, version: &str| format!("{name}@{version}");
    let packages = composer::packages(bytes, id, |_| true)?;
    Ok(packages.into_values().collect())
}
