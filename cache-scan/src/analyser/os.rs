//! The OS analyser: `etc/os-release`, `usr/lib/os-release`, `etc/alpine-release`,
//! `etc/debian_version`, and Alpine's `etc/apk/repositories` for the repository.

use cache_core::{Os, Repository};

/// The OS files one layer holds (regular files only; links are not followed).
#[derive(Debug, Default)]
pub(crate) struct OsFiles {
    pub(crate) etc_os_release: Option<String>,
    pub(crate) usr_os_release: Option<String>,
    pub(crate) alpine_release: Option<String>,
    pub(crate) debian_version: Option<String>,
}

impl OsFiles {
    /// The OS these files describe, if any.
    ///
    /// `os-release` gives the family (`ID`) and version (`VERSION_ID`); the
    /// distribution's own release file is more precise where there is one (`debian
    /// 12.11` rather than `12`, `alpine 3.10.4`). Without `os-release`, `alpine-release`
    /// alone means Alpine, and a numeric `debian_version` alone means Debian (Ubuntu's
    /// holds a codename such as `bookworm/sid`, which is ignored).
    pub(crate) fn detect(&self) -> Option<Os> {
        let release = self
            .etc_os_release
            .as_deref()
            .or(self.usr_os_release.as_deref())
            .map(parse_os_release);
        let alpine = self
            .alpine_release
            .as_deref()
            .map(first_line)
            .filter(|s| !s.is_empty());
        let debian = self
            .debian_version
            .as_deref()
            .map(first_line)
            .filter(|s| !s.is_empty());
        let numeric = |s: &&str| s.starts_with(|c: char| c.is_ascii_digit());
        let (family, name) = match release {
            Some((Some(id), version)) => {
                let name = match id.as_str() {
                    "debian" => debian.map(str::to_owned).or(version),
                    "alpine" => alpine.map(str::to_owned).or(version),
                    _ => version,
                };
                (id, name.unwrap_or_default())
            }
            _ => {
                if let Some(a) = alpine {
                    ("alpine".to_owned(), a.to_owned())
                } else if let Some(d) = debian.filter(numeric) {
                    ("debian".to_owned(), d.to_owned())
                } else {
                    return None;
                }
            }
        };
        Some(Os {
            family,
            name,
            ..Os::default()
        })
    }
}

/// `ID` (lower-cased) and `VERSION_ID` from an os-release file.
fn parse_os_release(text: &str) -> (Option<String>, Option<String>) {
    let mut id = None;
    let mut version = None;
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        if value.is_empty() {
            continue;
        }
        match key.trim() {
            "ID" => id = Some(value.to_ascii_lowercase()),
            "VERSION_ID" => version = Some(value),
            _ => {}
        }
    }
    (id, version)
}

/// A value as os-release(5) quotes it, the shell way: single quotes are literal; inside
/// double quotes a backslash escapes `$`, `` ` ``, `"` and `\` (and is kept before
/// anything else); unquoted, a backslash escapes any character.
fn unquote(v: &str) -> String {
    if let Some(inner) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let (inner, escapable): (&str, fn(char) -> bool) =
        match v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(inner) => (inner, |c| matches!(c, '$' | '`' | '"' | '\\')),
            None => (v, |_| true),
        };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && escapable(next)
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

/// The Alpine repository release (`3.10`, `edge`) from `etc/apk/repositories`.
pub(crate) fn apk_repository(text: &str) -> Option<Repository> {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for part in line.split('/') {
            let release = part.strip_prefix('v').unwrap_or(part);
            let is_version = release
                .split_once('.')
                .is_some_and(|(a, b)| is_digits(a) && is_digits(b));
            if part == "edge" || (part.starts_with('v') && is_version) {
                return Some(Repository {
                    family: "alpine".into(),
                    release: release.into(),
                    ..Repository::default()
                });
            }
        }
    }
    None
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_OS_RELEASE: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"#;

    const UBUNTU_OS_RELEASE: &str = r#"PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
UBUNTU_CODENAME=jammy
"#;

    const ALPINE_OS_RELEASE: &str = r#"NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.10.4
PRETTY_NAME="Alpine Linux v3.10"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://bugs.alpinelinux.org/"
"#;

    fn check(files: OsFiles, want: Option<(&str, &str)>) {
        let got = files.detect();
        let got = got.as_ref().map(|o| (o.family.as_str(), o.name.as_str()));
        assert_eq!(got, want, "{files:?}");
    }

    #[test]
    fn detects_distributions() {
        check(
            OsFiles {
                usr_os_release: Some(DEBIAN_OS_RELEASE.into()),
                debian_version: Some("12.11\n".into()),
                ..OsFiles::default()
            },
            Some(("debian", "12.11")),
        );
        check(
            OsFiles {
                etc_os_release: Some(DEBIAN_OS_RELEASE.into()),
                ..OsFiles::default()
            },
            Some(("debian", "12")),
        );
        check(
            OsFiles {
                etc_os_release: Some(UBUNTU_OS_RELEASE.into()),
                debian_version: Some("bookworm/sid\n".into()),
                ..OsFiles::default()
            },
            Some(("ubuntu", "22.04")),
        );
        check(
            OsFiles {
                etc_os_release: Some(ALPINE_OS_RELEASE.into()),
                alpine_release: Some("3.10.4\n".into()),
                ..OsFiles::default()
            },
            Some(("alpine", "3.10.4")),
        );
        check(
            OsFiles {
                alpine_release: Some("3.20.3\n".into()),
                ..OsFiles::default()
            },
            Some(("alpine", "3.20.3")),
        );
        check(
            OsFiles {
                debian_version: Some("11.9\n".into()),
                ..OsFiles::default()
            },
            Some(("debian", "11.9")),
        );
        check(
            OsFiles {
                debian_version: Some("bookworm/sid\n".into()),
                ..OsFiles::default()
            },
            None,
        );
        // etc/os-release wins over usr/lib/os-release when both are regular files.
        check(
            OsFiles {
                etc_os_release: Some(UBUNTU_OS_RELEASE.into()),
                usr_os_release: Some(ALPINE_OS_RELEASE.into()),
                ..OsFiles::default()
            },
            Some(("ubuntu", "22.04")),
        );
        check(OsFiles::default(), None);
    }

    #[test]
    fn parses_quoting() {
        let (id, v) = parse_os_release("ID='opensuse-leap'\nVERSION_ID=\"15.5\"\n# c\nJUNK\n");
        assert_eq!(id.as_deref(), Some("opensuse-leap"));
        assert_eq!(v.as_deref(), Some("15.5"));
        for (raw, want) in [
            // Single quotes are literal: no escapes inside.
            (r"'a\\b'", r"a\\b"),
            (r"'a\b'", r"a\b"),
            // Double quotes: \$ \` \" \\ are escapes, other backslashes stay.
            (r#""a\"b""#, r#"a"b"#),
            (r#""a\\b""#, r"a\b"),
            (r#""\$x\`y""#, "$x`y"),
            (r#""a\nb""#, r"a\nb"),
            // Unquoted: a backslash escapes any character.
            (r"a\ b", "a b"),
            (r"a\\b", r"a\b"),
            ("plain", "plain"),
            ("'", "'"),
        ] {
            assert_eq!(unquote(raw), want, "{raw}");
        }
    }

    #[test]
    fn reads_apk_repositories() {
        let text = "# mirrors\nhttps://dl-cdn.alpinelinux.org/alpine/v3.10/main\nhttps://dl-cdn.alpinelinux.org/alpine/v3.10/community\n";
        let repo = apk_repository(text).unwrap();
        assert_eq!(
            (repo.family.as_str(), repo.release.as_str()),
            ("alpine", "3.10")
        );
        let edge = apk_repository("http://mirror/alpine/edge/main\n").unwrap();
        assert_eq!(edge.release, "edge");
        assert!(apk_repository("# nothing\n").is_none());
    }
}
