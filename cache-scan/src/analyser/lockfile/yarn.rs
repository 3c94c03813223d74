//! `yarn`: `yarn.lock`, classic (v1) and Berry, read block by block (blocks are
//! separated by an empty line). A block's first line lists its patterns
//! (`name@range, name@range:`); its `version` line the resolved version. Blocks of the
//! `npm` protocol (or none) are packages; `workspace:`, `patch:`, `file:`, `link:`,
//! `portal:` and git blocks are not, nor is `__metadata`.

use std::collections::BTreeMap;

use cache_core::Package;

use super::package;

/// The locked packages, once per name and version.
pub(crate) fn parse(text: &str) -> Vec<Package> {
    let text = text.replace("\r\n", "\n");
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    for block in text.split("\n\n") {
        if let Some(p) = block_package(block) {
            pkgs.entry(p.id.clone()).or_insert(p);
        }
    }
    pkgs.into_values().collect()
}

fn block_package(block: &str) -> Option<Package> {
    let mut name = None;
    let mut version = None;
    for line in block.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("__metadata") {
            return None;
        }
        let trimmed = line.trim().trim_start_matches('"');
        if let Some(rest) = trimmed.strip_prefix("version") {
            let v = rest.trim_start_matches(['"', ':']).trim().trim_matches('"');
            if !v.is_empty() && rest.starts_with([' ', '"', ':', '\t']) {
                version = Some(v.to_owned());
            }
            continue;
        }
        if name.is_none() && !line.starts_with(' ') {
            let first = trimmed.split(", ").next().unwrap_or(trimmed);
            let (n, protocol) = pattern(first)?;
            if !matches!(protocol, "" | "npm") {
                return None;
            }
            name = Some(n.to_owned());
        }
    }
    Some(package(&name?, &version?))
}

/// `(name, protocol)` of one pattern such as `"@scope/name@npm:^1.0.0":`.
fn pattern(p: &str) -> Option<(&str, &str)> {
    let p = p
        .trim_start_matches(['\\', '"'])
        .trim_end_matches(':')
        .trim_end_matches('"');
    // The name is the shortest prefix of at least one character followed by `@`.
    let at = p.get(1..)?.find('@')? + 1;
    let (name, rest) = (p.get(..at)?, p.get(at + 1..)?);
    if name.contains(char::is_whitespace) {
        return None;
    }
    let protocol = match rest.split_once(':') {
        Some((proto, _)) if !proto.is_empty() && !proto.contains(char::is_whitespace) => proto,
        _ => "",
    };
    Some((name, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_and_berry() {
        let classic = "# yarn lockfile v1\n\n\"@babel/core@^7.0.0\", \"@babel/core@^7.1.0\":\n  version \"7.2.0\"\n  dependencies:\n    debug \"^4\"\n\ndebug@^4:\n  version \"4.3.4\"\n";
        let got: Vec<String> = parse(classic).into_iter().map(|p| p.id).collect();
        assert_eq!(got, ["@babel/core@7.2.0", "debug@4.3.4"]);
        let berry = "__metadata:\n  version: 6\n\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n\n\"ms@npm:^2.1.1\":\n  version: 2.1.3\n  resolution: \"ms@npm:2.1.3\"\n";
        let got: Vec<String> = parse(berry).into_iter().map(|p| p.id).collect();
        assert_eq!(got, ["ms@2.1.3"]);
    }
}
