//! `calc_key`: the cache key of a layer or image for a given set of analysers.

use sha2::{Digest as _, Sha256};

use crate::{Digest, Error, Result};

/// Domain separator and encoding version; changing the encoding means changing this.
const DOMAIN: &[u8] = b"scancache calc_key v1\0";

/// Computes the cache key of a layer (from its diffID) or an image (from its image ID).
///
/// The key is SHA-256 over a canonical encoding, so it is the same on every platform and
/// run, whatever order the maps iterate in:
///
/// ```text
/// "scancache calc_key v1\0"
/// str(id)
/// u32(number of analysers)  then per analyser, sorted by name: str(name) u32(version)
/// u32(number of options)    then per option, sorted by name:   str(name) str(value)
/// ```
///
/// where `u32` is 4 bytes big-endian and `str(s)` is `u32(len(s))` followed by the UTF-8
/// bytes. Every analyser version takes part, so bumping one changes every key and stale
/// results are never reused. Options are every setting that changes the analysis result.
///
/// Fails when an analyser or option name appears twice.
///
/// ```
/// use std::collections::HashMap;
/// let versions = HashMap::from([("dpkg".to_string(), 1u32), ("os".to_string(), 1)]);
/// let key = cache_core::calc_key(
///     "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0",
///     versions.iter().map(|(k, v)| (k.as_str(), *v)),
///     std::iter::empty::<(&str, &str)>(),
/// )
/// .unwrap();
/// assert!(key.as_str().starts_with("sha256:"));
/// ```
pub fn calc_key<'a, A, O>(id: &str, analyzer_versions: A, options: O) -> Result<Digest>
where
    A: IntoIterator<Item = (&'a str, u32)>,
    O: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut analyzers: Vec<(&str, u32)> = analyzer_versions.into_iter().collect();
    analyzers.sort_unstable();
    reject_duplicates("analyzer", analyzers.iter().map(|(name, _)| *name))?;
    let mut options: Vec<(&str, &str)> = options.into_iter().collect();
    options.sort_unstable();
    reject_duplicates("option", options.iter().map(|(name, _)| *name))?;

    let mut h = Sha256::new();
    h.update(DOMAIN);
    put_str(&mut h, id)?;
    put_len(&mut h, analyzers.len())?;
    for (name, version) in &analyzers {
        put_str(&mut h, name)?;
        h.update(version.to_be_bytes());
    }
    put_len(&mut h, options.len())?;
    for (name, value) in &options {
        put_str(&mut h, name)?;
        put_str(&mut h, value)?;
    }
    Ok(Digest::from_sha256(h.finalize().into()))
}

fn reject_duplicates<'a>(what: &str, sorted: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut prev: Option<&str> = None;
    for name in sorted {
        if prev == Some(name) {
            return Err(Error::Config {
                setting: crate::Setting::KeyInput,
                reason: format!("{what} {name:?} is listed twice"),
            });
        }
        prev = Some(name);
    }
    Ok(())
}

fn put_len(h: &mut Sha256, len: usize) -> Result<()> {
    let len = u32::try_from(len).map_err(|_| Error::Config {
        setting: crate::Setting::KeyInput,
        reason: "a field is longer than 4 GiB".into(),
    })?;
    h.update(len.to_be_bytes());
    Ok(())
}

fn put_str(h: &mut Sha256, s: &str) -> Result<()> {
    put_len(h, s.len())?;
    h.update(s.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const DIFF_ID: &str = "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0";

    fn key(id: &str, analyzers: &[(&str, u32)], options: &[(&str, &str)]) -> String {
        calc_key(id, analyzers.iter().copied(), options.iter().copied())
            .unwrap()
            .to_string()
    }

    /// Golden vectors, computed independently from the documented encoding (Python's
    /// hashlib over the bytes described in `calc_key`'s docs). They pin the encoding: a
    /// change here invalidates every cache in the field.
    type Case<'a> = (
        &'a str,
        &'a [(&'a str, u32)],
        &'a [(&'a str, &'a str)],
        &'a str,
    );

    #[test]
    fn golden_vectors() {
        let cases: &[Case] = &[
            (
                "",
                &[],
                &[],
                "sha256:8bf6a1b4034773e5d9494799f2f667d64e3db96921e649d1a9f087196c908f65",
            ),
            (
                DIFF_ID,
                &[("apk", 1), ("dpkg", 1), ("os-release", 1)],
                &[],
                "sha256:d227c9ae4756dc4b2741b6b414ecf62ec55cf02beb76b04ca4ba0a3b9ad6660e",
            ),
            (
                DIFF_ID,
                &[("apk", 1), ("dpkg", 1), ("os-release", 1)],
                &[("db-size-cap", "268435456")],
                "sha256:b86a9c46e56e346886b87318e3023844e05768e0a85a2ccd43d6bda6e01e1e36",
            ),
        ];
        for (id, analyzers, options, want) in cases {
            assert_eq!(
                &key(id, analyzers, options),
                want,
                "id={id:?} analyzers={analyzers:?}"
            );
        }
    }

    #[test]
    fn map_order_does_not_matter() {
        let names = ["apk", "dpkg", "os-release", "rpm", "python", "node"];
        let reference = key(DIFF_ID, &names.map(|n| (n, 3)), &[("a", "1"), ("b", "2")]);
        for _ in 0..20 {
            // Each HashMap gets a new random hash seed, hence a new iteration order.
            let versions: HashMap<String, u32> = names.iter().map(|n| (n.to_string(), 3)).collect();
            let options: HashMap<&str, &str> = HashMap::from([("b", "2"), ("a", "1")]);
            let got = calc_key(
                DIFF_ID,
                versions.iter().map(|(k, v)| (k.as_str(), *v)),
                options.iter().map(|(k, v)| (*k, *v)),
            )
            .unwrap();
            assert_eq!(got.to_string(), reference);
        }
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = key(DIFF_ID, &[("apk", 1), ("dpkg", 1)], &[("x", "1")]);
        let variants = [
            key(DIFF_ID, &[("apk", 1), ("dpkg", 2)], &[("x", "1")]),
            key(DIFF_ID, &[("apk", 1)], &[("x", "1")]),
            key(
                DIFF_ID,
                &[("apk", 1), ("dpkg", 1), ("rpm", 1)],
                &[("x", "1")],
            ),
            key(DIFF_ID, &[("apk", 1), ("dpkg", 1)], &[("x", "2")]),
            key(DIFF_ID, &[("apk", 1), ("dpkg", 1)], &[]),
            key(
                &DIFF_ID.replace('5', "6"),
                &[("apk", 1), ("dpkg", 1)],
                &[("x", "1")],
            ),
            // Length framing: moving bytes between fields must change the key.
            key(DIFF_ID, &[("apkd", 1), ("pkg", 1)], &[("x", "1")]),
        ];
        for v in &variants {
            assert_ne!(v, &base);
        }
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let err = calc_key(DIFF_ID, [("apk", 1), ("apk", 2)], std::iter::empty()).unwrap_err();
        assert!(err.to_string().contains("\"apk\" is listed twice"), "{err}");
    }
}
