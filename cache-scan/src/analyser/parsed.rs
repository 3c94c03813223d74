//! A package as an analyser parses it, its dependencies still names, and the
//! resolution of those names to the IDs of the packages installed beside it.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    hash::Hash,
};

use cache_core::Package;

use crate::limits::{self, Crossed, Tally};

/// Most package IDs one dependency name resolves to (several packages of one name, or
/// several providers of one virtual name); the smallest IDs are kept.
const MAX_IDS_PER_NAME: usize = 64;
/// Most IDs in one package's `DependsOn`; the smallest are kept. Real packages have a few
/// dozen at most: the caps only bound what a hostile database can cost (linear in its
/// size, never quadratic).
const MAX_DEPENDS_ON: usize = 1024;

/// One parsed package with its dependency and provides names, before resolution.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) package: Package,
    pub(crate) depends: Vec<String>,
    pub(crate) provides: Vec<String>,
}

/// The packages of one database, each identity once: a package whose identity (`K`) was
/// seen before replaces the earlier one in its place (the last entry wins), found through
/// an index, so collapsing costs linear time. Every package is counted in a [`Tally`].
#[derive(Debug)]
pub(crate) struct Collapsed<K> {
    packages: Vec<Parsed>,
    index: HashMap<K, usize>,
}

impl<K> Default for Collapsed<K> {
    fn default() -> Self {
        Collapsed {
            packages: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> Collapsed<K> {
    /// Adds `parsed`, or replaces the package of the same `identity`.
    pub(crate) fn push(
        &mut self,
        identity: K,
        parsed: Parsed,
        tally: &mut Tally,
    ) -> Result<(), Crossed> {
        let weight = limits::weight(&parsed.package, &parsed.depends, &parsed.provides);
        match self
            .index
            .get(&identity)
            .and_then(|&i| self.packages.get_mut(i))
        {
            Some(earlier) => {
                let old = limits::weight(&earlier.package, &earlier.depends, &earlier.provides);
                *earlier = parsed;
                tally.replace_package(old, weight)
            }
            None => {
                self.index.insert(identity, self.packages.len());
                self.packages.push(parsed);
                tally.add_package(weight)
            }
        }
    }

    /// The packages, in the order their identities first appeared.
    pub(crate) fn into_vec(self) -> Vec<Parsed> {
        self.packages
    }
}

/// The dependency resolution (`resolve_with`), counting the bytes of every resolved ID in `tally` and stopping
/// once a cap is crossed (`DependsOn` lists are part of the stored document, and a
/// hostile database can make them large).
pub(crate) fn resolve_depends_within(
    parsed: &mut [Parsed],
    tally: &mut Tally,
) -> Result<(), Crossed> {
    let mut budget = Ok(());
    resolve_with(parsed, &mut |ids: &[&str]| {
        budget = tally.grow(ids.iter().map(|id| id.len() as u64 + 3).sum());
        budget.is_ok()
    });
    budget
}

/// Fills each package's `DependsOn` with the IDs of the packages in `parsed` that
/// satisfy its dependencies, by name or through what they provide; sorted, without
/// duplicates or the package itself. Bounded by [`MAX_IDS_PER_NAME`] and
/// [`MAX_DEPENDS_ON`], so the cost stays linear in the database's size.
#[cfg(test)]
pub(crate) fn resolve_depends(parsed: &mut [Parsed]) {
    resolve_with(parsed, &mut |_| true);
}

/// The resolution; `accept` sees each package's resolved IDs and returns false to stop
/// (the packages not yet resolved keep their `DependsOn` as it was).
fn resolve_with(parsed: &mut [Parsed], accept: &mut dyn FnMut(&[&str]) -> bool) {
    // Lists rather than sets while collecting: most names have one ID, and a list of one
    // costs a fraction of a set's node (`capped` sorts and deduplicates them).
    let mut by_name: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut by_provides: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in parsed.iter() {
        by_name
            .entry(p.package.name.as_str())
            .or_default()
            .push(p.package.id.as_str());
        for name in &p.provides {
            by_provides
                .entry(name.as_str())
                .or_default()
                .push(p.package.id.as_str());
        }
    }
    let (by_name, by_provides) = (capped(by_name), capped(by_provides));
    let mut resolved: Vec<Vec<String>> = Vec::with_capacity(parsed.len());
    for p in parsed.iter() {
        let ids = {
            let own = p.package.id.as_str();
            let mut seen: HashSet<&str> = HashSet::new();
            let mut ids: BTreeSet<&str> = BTreeSet::new();
            for d in &p.depends {
                if !seen.insert(d.as_str()) {
                    continue;
                }
                let Some(found) = by_name
                    .get(d.as_str())
                    .or_else(|| by_provides.get(d.as_str()))
                else {
                    continue;
                };
                ids.extend(found.iter().filter(|id| **id != own).take(MAX_IDS_PER_NAME));
                // Keep the smallest.
                while ids.len() > MAX_DEPENDS_ON {
                    ids.pop_last();
                }
            }
            ids.into_iter().collect::<Vec<&str>>()
        };
        if !accept(&ids) {
            break;
        }
        resolved.push(ids.into_iter().map(str::to_owned).collect());
    }
    for (p, ids) in parsed.iter_mut().zip(resolved) {
        p.package.depends_on = ids;
    }
}

/// One sorted list of at most [`MAX_IDS_PER_NAME`] + 1 IDs per name (one more, so that
/// dropping the depending package itself still leaves the cap).
fn capped<'a>(map: HashMap<&'a str, Vec<&'a str>>) -> HashMap<&'a str, Vec<&'a str>> {
    map.into_iter()
        .map(|(name, mut ids)| {
            ids.sort_unstable();
            ids.dedup();
            ids.truncate(MAX_IDS_PER_NAME + 1);
            ids.shrink_to_fit();
            (name, ids)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(name: &str, version: &str, depends: &[&str]) -> Parsed {
        Parsed {
            package: Package {
                id: format!("{name}@{version}"),
                name: name.into(),
                ..Package::default()
            },
            depends: depends.iter().map(|d| (*d).to_owned()).collect(),
            provides: Vec::new(),
        }
    }

    #[test]
    fn many_same_named_packages_resolve_without_blowing_up() {
        // 20,000 stanzas of one name, each depending on that name (and repeating it):
        // without sets and caps this is 400 million IDs.
        let mut all: Vec<Parsed> = (0..20_000)
            .map(|i| parsed("a", &format!("{i:05}"), &["a", "a", "a"]))
            .collect();
        all.push(parsed("b", "1", &["a"]));
        resolve_depends(&mut all);
        for p in &all {
            assert!(
                p.package.depends_on.len() <= MAX_IDS_PER_NAME,
                "{}",
                p.package.id
            );
            assert!(!p.package.depends_on.contains(&p.package.id));
        }
        let b = &all.last().unwrap().package;
        assert_eq!(b.depends_on.len(), MAX_IDS_PER_NAME);
        assert_eq!(b.depends_on.first().map(String::as_str), Some("a@00000"));
        assert!(b.depends_on.is_sorted());
        // The package itself is skipped without shortening the list.
        assert_eq!(all[0].package.depends_on.len(), MAX_IDS_PER_NAME);
        assert_eq!(all[0].package.depends_on[0], "a@00001");
    }

    #[test]
    fn depends_on_is_capped() {
        let names: Vec<String> = (0..2_000).map(|i| format!("p{i:04}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut all: Vec<Parsed> = names.iter().map(|n| parsed(n, "1", &[])).collect();
        all.push(parsed("top", "1", &refs));
        resolve_depends(&mut all);
        let top = &all.last().unwrap().package;
        assert_eq!(top.depends_on.len(), MAX_DEPENDS_ON);
        assert_eq!(top.depends_on[0], "p0000@1");
        assert!(top.depends_on.is_sorted());
    }
}
