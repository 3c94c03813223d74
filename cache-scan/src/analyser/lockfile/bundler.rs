//! `bundler`: `Gemfile.lock`, every spec line (`    name (version)`, the platform cut
//! from the version); the `DEPENDENCIES` section marks the direct ones.

use std::collections::BTreeMap;

use cache_core::Package;

use super::package;

/// The locked gems.
pub(crate) fn parse(text: &str) -> Vec<Package> {
    let mut pkgs: BTreeMap<String, Package> = BTreeMap::new();
    let mut deps: Vec<(String, Vec<String>)> = Vec::new();
    let mut direct = Vec::new();
    let mut in_direct = false;
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        if in_direct {
            if indent == 2 {
                if let Some(name) = line.split_whitespace().next() {
                    direct.push(name.trim_end_matches('!').to_owned());
                }
                continue;
            }
            in_direct = false;
        }
        match indent {
            4 => {
                let fields: Vec<&str> = line.split_whitespace().collect();
                if let [name, version] = fields.as_slice() {
                    let version = version.trim_matches(|c| c == '(' || c == ')');
                    let version = version.split('-').next().unwrap_or(version);
                    let mut p = package(name, version);
                    p.relationship = "indirect".into();
                    pkgs.insert((*name).to_owned(), p);
                    deps.push(((*name).to_owned(), Vec::new()));
                }
            }
            6 => {
                if let (Some(name), Some(last)) = (line.split_whitespace().next(), deps.last_mut())
                {
                    last.1.push(name.to_owned());
                }
            }
            _ => {}
        }
        if line == "DEPENDENCIES" {
            in_direct = true;
        }
    }
    for d in direct {
        if let Some(p) = pkgs.get_mut(&d) {
            p.relationship = "direct".into();
        }
    }
    let ids: BTreeMap<String, String> = pkgs
        .iter()
        .map(|(n, p)| (n.clone(), p.id.clone()))
        .collect();
    for (name, on) in deps {
        if let Some(p) = pkgs.get_mut(&name) {
            let mut d: Vec<String> = on.iter().filter_map(|n| ids.get(n).cloned()).collect();
            d.sort();
            d.dedup();
            p.depends_on = d;
        }
    }
    pkgs.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_direct_dependencies() {
        let pkgs = parse(
            "GEM\n  remote: x\n  specs:\n    rack (3.0.8)\n    nokogiri (1.15.4-x86_64-linux)\n      racc (~> 1.4)\n    racc (1.7.1)\n\nDEPENDENCIES\n  nokogiri\n",
        );
        let got: Vec<(&str, &str, &str)> = pkgs
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.relationship.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("nokogiri", "1.15.4", "direct"),
                ("racc", "1.7.1", "indirect"),
                ("rack", "3.0.8", "indirect")
            ]
        );
        assert_eq!(pkgs[0].depends_on, ["racc@1.7.1"]);
    }
}
