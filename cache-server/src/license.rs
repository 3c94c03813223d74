//! Classifying license names with the categories a client sends (`ScanOptions`'
//! `license_categories`), as the reference's scan service does: SPDX expressions are
//! split on `AND`/`OR` (an `AND` takes the most severe category of its sides, an `OR`
//! the least, either side unknown makes it unknown), a name matches a category's list
//! case-insensitively with or without its `-only`/`-or-later`/`+` suffix, and each
//! category has a severity.

use std::collections::HashMap;

use crate::proto::{common::Severity, scanner::Licenses};

/// The categories in the protocol's order, with their severities.
const CATEGORIES: [(&str, Severity); 7] = [
    ("forbidden", Severity::Critical),
    ("restricted", Severity::High),
    ("reciprocal", Severity::Medium),
    ("notice", Severity::Low),
    ("permissive", Severity::Low),
    ("unencumbered", Severity::Low),
    ("unknown", Severity::Unknown),
];

/// The severity of a category name (`UNKNOWN` for unknown names).
pub fn severity_of(category: &str) -> Severity {
    CATEGORIES
        .iter()
        .find(|(c, _)| *c == category)
        .map_or(Severity::Unknown, |(_, s)| *s)
}

/// License names by category, lower-cased, from a scan's options.
#[derive(Clone, Debug, Default)]
pub struct Classifier {
    names: HashMap<String, &'static str>,
}

impl Classifier {
    /// A classifier for the categories a client sent. Category names the protocol does
    /// not know are ignored.
    pub fn new(categories: &HashMap<String, Licenses>) -> Classifier {
        let mut names = HashMap::new();
        // In the protocol's order, so a name listed twice lands in the first category.
        for (category, _) in CATEGORIES {
            if let Some(list) = categories.get(category) {
                for name in &list.names {
                    names.entry(name.to_lowercase()).or_insert(category);
                }
            }
        }
        Classifier { names }
    }

    /// The category (`forbidden`, …, `unknown`) and severity of a license name or SPDX
    /// expression.
    pub fn classify(&self, license: &str) -> (&'static str, Severity) {
        let tokens = tokenize(license);
        let mut parser = Parser {
            tokens: &tokens,
            at: 0,
            classifier: self,
        };
        let category = match parser.or_expr() {
            Some(c) if parser.at == tokens.len() => c,
            _ => "unknown",
        };
        (category, severity_of(category))
    }

    /// The category of one license name.
    fn simple(&self, name: &str) -> &'static str {
        let lower = name.to_lowercase();
        let base = ["-only", "-or-later", "+"]
            .iter()
            .find_map(|suffix| lower.strip_suffix(suffix))
            .unwrap_or(&lower);
        self.names
            .get(&lower)
            .or_else(|| self.names.get(base))
            .copied()
            .unwrap_or("unknown")
    }
}

/// The tokens of an expression: `(`, `)`, and words.
fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        match c {
            '(' | ')' => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

struct Parser<'a> {
    tokens: &'a [String],
    at: usize,
    classifier: &'a Classifier,
}

impl Parser<'_> {
    fn peek_is(&self, word: &str) -> bool {
        self.tokens
            .get(self.at)
            .is_some_and(|t| t.eq_ignore_ascii_case(word))
    }

    /// `and_expr (OR and_expr)*`: the least severe side.
    fn or_expr(&mut self) -> Option<&'static str> {
        let mut left = self.and_expr()?;
        while self.peek_is("OR") {
            self.at += 1;
            let right = self.and_expr()?;
            left = combine(left, right, false);
        }
        Some(left)
    }

    /// `term (AND term)*`: the most severe side.
    fn and_expr(&mut self) -> Option<&'static str> {
        let mut left = self.term()?;
        while self.peek_is("AND") {
            self.at += 1;
            let right = self.term()?;
            left = combine(left, right, true);
        }
        Some(left)
    }

    /// `( or_expr )` or `name [WITH exception]`.
    fn term(&mut self) -> Option<&'static str> {
        let token = self.tokens.get(self.at)?;
        self.at += 1;
        if token == "(" {
            let inner = self.or_expr()?;
            if self.tokens.get(self.at).map(String::as_str) != Some(")") {
                return None;
            }
            self.at += 1;
            return Some(inner);
        }
        if token == ")" {
            return None;
        }
        if self.peek_is("WITH") {
            let exception = self.tokens.get(self.at + 1)?;
            self.at += 2;
            // Lists name such licenses as `GPL-2.0-with-classpath-exception`.
            let joined = format!("{token} WITH {exception}");
            let dashed = format!(
                "{token}-with-{}",
                exception
                    .trim_end_matches("-2.0")
                    .trim_end_matches("-exception")
            ) + "-exception";
            let found = [joined.as_str(), dashed.as_str()]
                .into_iter()
                .map(|n| self.classifier.simple(n))
                .find(|c| *c != "unknown");
            return Some(found.unwrap_or("unknown"));
        }
        Some(self.classifier.simple(token))
    }
}

/// Combines two sides: unknown wins; else the most (`AND`) or least (`OR`) severe.
fn combine(a: &'static str, b: &'static str, and: bool) -> &'static str {
    if a == "unknown" || b == "unknown" {
        return "unknown";
    }
    let (sa, sb) = (severity_of(a) as i32, severity_of(b) as i32);
    match (and, sa >= sb) {
        (true, true) | (false, false) => a,
        _ => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> Classifier {
        let list = |names: &[&str]| Licenses {
            names: names.iter().map(|s| s.to_string()).collect(),
        };
        Classifier::new(&HashMap::from([
            ("forbidden".to_string(), list(&["WTFPL", "AGPL-3.0"])),
            (
                "restricted".to_string(),
                list(&["GPL-2.0", "GPL-2.0-with-classpath-exception"]),
            ),
            ("notice".to_string(), list(&["MIT", "Apache-2.0"])),
            ("no-such-category".to_string(), list(&["Zlib"])),
        ]))
    }

    #[test]
    fn names_and_expressions() {
        let c = classifier();
        for (license, want, severity) in [
            ("MIT", "notice", Severity::Low),
            ("mit", "notice", Severity::Low),
            ("GPL-2.0-only", "restricted", Severity::High),
            ("GPL-2.0-or-later", "restricted", Severity::High),
            ("GPL-2.0+", "restricted", Severity::High),
            ("WTFPL", "forbidden", Severity::Critical),
            ("Zlib", "unknown", Severity::Unknown),
            ("MIT AND GPL-2.0", "restricted", Severity::High),
            ("MIT OR GPL-2.0", "notice", Severity::Low),
            ("(MIT OR WTFPL) AND Apache-2.0", "notice", Severity::Low),
            (
                "MIT AND (GPL-2.0 OR AGPL-3.0)",
                "restricted",
                Severity::High,
            ),
            ("MIT OR Unlisted", "unknown", Severity::Unknown),
            (
                "GPL-2.0 WITH Classpath-exception-2.0",
                "restricted",
                Severity::High,
            ),
            ("(MIT", "unknown", Severity::Unknown),
            ("", "unknown", Severity::Unknown),
        ] {
            assert_eq!(c.classify(license), (want, severity), "{license}");
        }
    }
}
