//! Glob patterns of `--skip-dirs` and `--skip-files`, matched against a path relative to
//! the scanned directory: `*` matches any characters but `/`, `?` one such character,
//! `**` as a whole segment any number of segments (none included), `[abc]`/`[a-z]`/
//! `[!a]` one character of a class; anything else matches itself.

/// One compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    segments: Vec<String>,
}

impl Glob {
    /// The pattern `pattern`; a leading `./` or `/` and a trailing `/` are ignored.
    pub fn new(pattern: &str) -> Glob {
        let p = pattern.trim_start_matches("./").trim_matches('/');
        Glob {
            segments: p
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// True when the whole of `path` (segments separated by `/`) matches.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| path.get(skip..).is_some_and(|p| match_segments(rest, p)))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, tail)) => {
                match_segment(first.as_bytes(), seg.as_bytes()) && match_segments(rest, tail)
            }
            None => false,
        },
    }
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => {
            (0..=s.len()).any(|i| s.get(i..).is_some_and(|t| match_segment(rest, t)))
        }
        Some((b'?', rest)) => s.split_first().is_some_and(|(_, t)| match_segment(rest, t)),
        Some((b'[', rest)) => {
            let Some(end) = rest.iter().skip(1).position(|&c| c == b']').map(|i| i + 1) else {
                return s.first() == Some(&b'[')
                    && match_segment(rest, s.get(1..).unwrap_or_default());
            };
            let (class, after) = (
                rest.get(..end).unwrap_or_default(),
                rest.get(end + 1..).unwrap_or_default(),
            );
            let Some((&c, t)) = s.split_first() else {
                return false;
            };
            let (negate, class) = match class.split_first() {
                Some((b'!' | b'^', c)) => (true, c),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while let Some(&lo) = class.get(i) {
                if class.get(i + 1) == Some(&b'-')
                    && let Some(&hi) = class.get(i + 2)
                {
                    hit |= (lo..=hi).contains(&c);
                    i += 3;
                } else {
                    hit |= lo == c;
                    i += 1;
                }
            }
            hit != negate && match_segment(after, t)
        }
        Some((&c, rest)) => s
            .split_first()
            .is_some_and(|(&d, t)| c == d && match_segment(rest, t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        for (pattern, path, want) in [
            ("vendor", "vendor", true),
            ("vendor", "a/vendor", false),
            ("**/vendor", "a/b/vendor", true),
            ("**/vendor", "vendor", true),
            ("a/*/c", "a/b/c", true),
            ("a/*/c", "a/b/x/c", false),
            ("a/**/c", "a/b/x/c", true),
            ("*.lock", "Cargo.lock", true),
            ("**/*.lock", "x/y/Cargo.lock", true),
            ("te?t", "test", true),
            ("[ab]x", "bx", true),
            ("[!ab]x", "bx", false),
            ("[a-c]x", "cx", true),
            ("./web/", "web", true),
        ] {
            assert_eq!(Glob::new(pattern).matches(path), want, "{pattern} {path}");
        }
    }
}
