//! The caps on what one layer may produce, counted while the layer is read so that no
//! input makes a scan hold more than the caps allow ([`Tally`]), and the counters of what
//! a scan collapsed or skipped ([`ScanCounters`]).
//!
//! Packages are counted after duplicates collapse. The stored document is bounded twice:
//! while parsing, by an estimate of what each package, whiteout and dependency adds
//! ([`weight`]), so that memory stays bounded however the input is shaped; and once the
//! layer's result is built, by its exact encoded size (the same rule the cache applies
//! to every put, `cache_core::rules::check_document_size`).

use std::fmt;

use cache_core::Package;

/// The caps on one layer's result; see [`crate::ScanOptions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LayerLimits {
    /// Packages per layer, after duplicates collapse.
    pub(crate) max_packages: u64,
    /// The stored document's size in bytes; `None` for no cap.
    pub(crate) max_document: Option<u64>,
}

impl LayerLimits {
    /// No caps, for parsing outside a scan (tests, fuzzing).
    pub(crate) const UNBOUNDED: LayerLimits = LayerLimits {
        max_packages: u64::MAX,
        max_document: None,
    };
}

/// A cap that a scan refuses to cross; [`crate::ScanError::LimitExceeded`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// Packages in one layer, after duplicates collapse
    /// ([`crate::ScanOptions::max_packages_per_layer`]).
    PackagesPerLayer,
    /// The size of one stored document (`cache_core::CacheOptions::max_document_size`
    /// of the cache scanned through).
    DocumentSize,
    /// Layers in one image ([`crate::ScanOptions::max_layers`]).
    Layers,
}

impl Limit {
    /// Every limit, for counters indexed by limit.
    pub const ALL: [Limit; 3] = [Limit::PackagesPerLayer, Limit::DocumentSize, Limit::Layers];

    /// A short name for logs and metrics labels: `packages_per_layer`, `document_size`,
    /// `layers`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::PackagesPerLayer => "packages_per_layer",
            Limit::DocumentSize => "document_size",
            Limit::Layers => "layers",
        }
    }

    /// The library setting that raises it, as messages name it.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::PackagesPerLayer => "ScanOptions::max_packages_per_layer",
            Limit::DocumentSize => "CacheOptions::max_document_size",
            Limit::Layers => "ScanOptions::max_layers",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::PackagesPerLayer => "packages-per-layer cap",
            Limit::DocumentSize => "document size cap",
            Limit::Layers => "layers-per-image cap",
        })
    }
}

/// Which cap a layer crossed while it was read, and the count or size that crossed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Crossed {
    pub(crate) limit: Limit,
    /// The cap.
    pub(crate) cap: u64,
    /// What the layer reached (the first value past the cap; for the document while
    /// parsing, an estimate).
    pub(crate) reached: u64,
}

/// Why reading a package database stopped before its end.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The layer crossed a cap.
    Crossed(Crossed),
    /// Reading the layer failed.
    Io(std::io::Error),
}

impl From<Crossed> for Stop {
    fn from(c: Crossed) -> Self {
        Stop::Crossed(c)
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Io(e)
    }
}

/// Longest line a package database parser keeps (the rest of a longer line is skipped,
/// with a warning): no real field comes near it, and it bounds the memory one line costs.
pub(crate) const MAX_LINE: usize = 1 << 20;

/// What a scan collapsed, skipped or refused, for logs and (later) a server's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanCounters {
    /// Package database entries that repeated an earlier entry's identity (dpkg: name and
    /// architecture; apk: name) and replaced it, over the layers this scan analysed.
    pub duplicates_collapsed: u64,
    /// Files an analyser skipped for being over their size cap (each with a warning).
    pub files_skipped: u64,
}

/// What one layer has produced so far, checked against its [`LayerLimits`].
#[derive(Debug)]
pub(crate) struct Tally {
    limits: LayerLimits,
    packages: u64,
    /// Estimated document bytes of what is kept so far.
    bytes: u64,
    pub(crate) counters: ScanCounters,
}

impl Tally {
    pub(crate) fn new(limits: LayerLimits) -> Tally {
        Tally {
            limits,
            packages: 0,
            bytes: 0,
            counters: ScanCounters::default(),
        }
    }

    /// A package joins the layer's result, weighing `weight` bytes.
    pub(crate) fn add_package(&mut self, weight: u64) -> Result<(), Crossed> {
        self.packages += 1;
        if self.packages > self.limits.max_packages {
            return Err(Crossed {
                limit: Limit::PackagesPerLayer,
                cap: self.limits.max_packages,
                reached: self.packages,
            });
        }
        self.grow(weight)
    }

    /// A package replaces an earlier one of the same identity (a collapsed duplicate).
    pub(crate) fn replace_package(&mut self, old: u64, new: u64) -> Result<(), Crossed> {
        self.counters.duplicates_collapsed += 1;
        self.bytes = self.bytes.saturating_sub(old);
        self.grow(new)
    }

    /// `bytes` more are kept for the layer's result.
    pub(crate) fn grow(&mut self, bytes: u64) -> Result<(), Crossed> {
        self.bytes = self.bytes.saturating_add(bytes);
        self.check(0)
    }

    /// Checks that `pending` bytes (held while a stanza is being read) would still fit.
    pub(crate) fn check(&self, pending: u64) -> Result<(), Crossed> {
        let reached = self.bytes.saturating_add(pending);
        match self.limits.max_document {
            Some(cap) if reached > cap => Err(Crossed {
                limit: Limit::DocumentSize,
                cap,
                reached,
            }),
            _ => Ok(()),
        }
    }
}

/// Bytes of JSON a field name and its punctuation cost at least (`"Name":"",`).
const FIELD_OVERHEAD: u64 = 8;

/// The weight of a parsed package: a lower estimate of the document bytes it adds
/// (its fields' bytes plus a little per field), plus its dependency and provides names,
/// which the resolution turns into `DependsOn` IDs.
pub(crate) fn weight(pkg: &Package, depends: &[String], provides: &[String]) -> u64 {
    let strings = [
        &pkg.id,
        &pkg.name,
        &pkg.version,
        &pkg.release,
        &pkg.arch,
        &pkg.src_name,
        &pkg.src_version,
        &pkg.src_release,
        &pkg.maintainer,
        &pkg.digest,
        &pkg.analyzed_by,
    ];
    let lists: [&[String]; 4] = [&pkg.licenses, &pkg.installed_files, depends, provides];
    let field = |s: &String| s.len() as u64 + FIELD_OVERHEAD;
    2 + strings.into_iter().map(field).sum::<u64>()
        + lists
            .into_iter()
            .flatten()
            .map(|s| s.len() as u64 + 3)
            .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use cache_core::{Package, codec};

    use super::*;

    #[test]
    fn weight_is_below_the_encoded_size() {
        let package = Package {
            id: "a@1-2".into(),
            name: "a".into(),
            version: "1".into(),
            release: "2".into(),
            arch: "amd64".into(),
            src_name: "a".into(),
            src_version: "1".into(),
            src_release: "2".into(),
            maintainer: "M <m@example.org>".into(),
            analyzed_by: "dpkg".into(),
            installed_files: vec!["usr/bin/a".into()],
            ..Package::default()
        };
        let encoded = codec::encoded_len(&package);
        let w = weight(&package, &[], &[]);
        assert!(w <= encoded, "{w} > {encoded}");
        assert!(w * 2 > encoded, "{w} much below {encoded}");
    }

    #[test]
    fn caps_are_crossed_past_their_value() {
        let mut t = Tally::new(LayerLimits {
            max_packages: 2,
            max_document: Some(100),
        });
        assert!(t.add_package(40).is_ok());
        assert!(t.add_package(40).is_ok());
        let crossed = t.add_package(1).unwrap_err();
        assert_eq!(
            (crossed.limit, crossed.cap, crossed.reached),
            (Limit::PackagesPerLayer, 2, 3)
        );

        let mut t = Tally::new(LayerLimits {
            max_packages: 10,
            max_document: Some(100),
        });
        t.add_package(60).unwrap();
        // A duplicate replaces, it does not add.
        t.replace_package(60, 70).unwrap();
        assert_eq!(t.counters.duplicates_collapsed, 1);
        assert!(t.check(30).is_ok());
        assert_eq!(t.check(31).unwrap_err().limit, Limit::DocumentSize);
        assert!(t.grow(31).is_err());
    }
}
