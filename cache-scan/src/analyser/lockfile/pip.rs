//! `pip`: `requirements.txt`, the lines that pin one version with `==` (spaces, line
//! continuations, extras, comments, markers and hashes removed first).

use cache_core::Package;

use super::package;

/// The pinned requirements.
pub(crate) fn parse(text: &str) -> Vec<Package> {
    text.lines().filter_map(line).collect()
}

fn line(raw: &str) -> Option<Package> {
    let mut l: String = raw.chars().filter(|c| *c != ' ' && *c != '\\').collect();
    if let (Some(s), Some(e)) = (l.find('['), l.find(']'))
        && s < e
    {
        l.replace_range(s..=e, "");
    }
    for key in ["#", ";", "--"] {
        if let Some(i) = l.find(key) {
            l.truncate(i);
            l.truncate(l.trim_end().len());
        }
    }
    let split = l
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .map(|(i, _)| i)?;
    let (name, specs) = l.split_at(split);
    if name.is_empty() {
        return None;
    }
    let version = specs.split(',').find_map(|s| s.strip_prefix("=="))?;
    valid_version(version).then(|| package(name, version))
}

/// A PEP 440 version, loosely: starts with a digit (or `v` and a digit) and holds only
/// the characters such versions use.
fn valid_version(v: &str) -> bool {
    let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
    v.starts_with(|c: char| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '!' | '+' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pinned_lines_count() {
        let pkgs = parse(
            "# comment\nrequests==2.31.0\nflask>=2.0\nDjango [bcrypt] == 4.2.1 ; python_version > '3'\nurllib3==2.0.*\nsix==1.16.0 --hash=sha256:abc\n-r other.txt\nnumpy==1.26.0 # pinned\n",
        );
        let got: Vec<(&str, &str)> = pkgs
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("requests", "2.31.0"),
                ("Django", "4.2.1"),
                ("six", "1.16.0"),
                ("numpy", "1.26.0")
            ]
        );
    }
}
