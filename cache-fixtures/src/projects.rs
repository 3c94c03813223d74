//! Project trees for directory scans: one lockfile of each kind the `fs` analysers read,
//! a few hundred entries each, written as the package managers write them, and the bad
//! files the bad-input tests share.
//!
//! [`LOCKFILES`] names every file [`write_project`] writes and the packages the reference
//! scanner reports for it (type and count), so a test can show both tools agree on
//! more than an empty set.

use std::{fmt::Write as _, fs, io, path::Path};

use serde_json::{Map, Value, json};

/// `(path, result type, packages reported)` of every lockfile [`write_project`] writes
/// with `n` = [`PROJECT_ENTRIES`] (development packages are not reported).
pub const LOCKFILES: [(&str, &str, usize); 16] = [
    ("rust/Cargo.lock", "cargo", 300),
    ("npm-v1/package-lock.json", "npm", 276),
    ("npm-v2/package-lock.json", "npm", 276),
    ("npm-v3/package-lock.json", "npm", 276),
    ("yarn-classic/yarn.lock", "yarn", 300),
    ("yarn-berry/yarn.lock", "yarn", 300),
    ("pnpm-v6/pnpm-lock.yaml", "pnpm", 270),
    ("pnpm-v9/pnpm-lock.yaml", "pnpm", 270),
    ("go/go.mod", "gomod", 301),
    ("poetry/poetry.lock", "poetry", 270),
    ("pipenv/Pipfile.lock", "pipenv", 300),
    ("pip/requirements.txt", "pip", 300),
    ("ruby/Gemfile.lock", "bundler", 300),
    ("php/composer.lock", "composer", 270),
    ("dotnet/packages.lock.json", "nuget", 300),
    ("java/pom.xml", "pom", 0),
];

/// Entries per lockfile in [`write_project`].
pub const PROJECT_ENTRIES: usize = 300;

fn version(i: usize) -> String {
    format!("{}.{}.{}", 1 + i % 3, i % 10, i)
}

/// Writes one lockfile of each kind under `dir` (see [`LOCKFILES`]), each with `n`
/// entries, plus a `.git` directory and a `node_modules` copy of a lockfile that must
/// not be read. One entry in ten is a development package where the format has them.
pub fn write_project(dir: &Path, n: usize) -> io::Result<()> {
    for (path, text) in project_files(n) {
        let full = dir.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(full, text)?;
    }
    Ok(())
}

/// The files of [`write_project`], `(relative path, content)`.
pub fn project_files(n: usize) -> Vec<(String, String)> {
    let mut files = vec![
        ("rust/Cargo.lock".to_owned(), cargo_lock(n)),
        ("npm-v1/package-lock.json".to_owned(), npm_v1(n)),
        ("npm-v2/package-lock.json".to_owned(), npm_v2(n, 2)),
        ("npm-v3/package-lock.json".to_owned(), npm_v2(n, 3)),
        ("yarn-classic/yarn.lock".to_owned(), yarn_classic(n)),
        ("yarn-berry/yarn.lock".to_owned(), yarn_berry(n)),
        ("pnpm-v6/pnpm-lock.yaml".to_owned(), pnpm_v6(n)),
        ("pnpm-v9/pnpm-lock.yaml".to_owned(), pnpm_v9(n)),
        ("go/go.mod".to_owned(), go_mod(n)),
        ("poetry/poetry.lock".to_owned(), poetry(n)),
        ("pipenv/Pipfile.lock".to_owned(), pipfile(n)),
        ("pip/requirements.txt".to_owned(), requirements(n)),
        ("ruby/Gemfile.lock".to_owned(), gemfile(n)),
        ("php/composer.lock".to_owned(), composer(n)),
        ("dotnet/packages.lock.json".to_owned(), nuget(n)),
        ("java/pom.xml".to_owned(), POM.to_owned()),
    ];
    // Neither is read: `.git` is never entered, and a lockfile inside `node_modules`
    // belongs to an installed package.
    files.push((".git/Cargo.lock".to_owned(), cargo_lock(3)));
    files.push((
        "npm-v3/node_modules/x/package-lock.json".to_owned(),
        npm_v2(3, 3),
    ));
    files
}

/// The packages `pom.xml` of [`write_project`] declares, `(name, version)`; the
/// reference resolves a pom over the network, so this is checked against our own list.
pub const POM_PACKAGES: [(&str, &str); 4] = [
    ("com.example:app", "1.4.0"),
    ("com.fasterxml.jackson.core:jackson-databind", "2.15.2"),
    ("org.slf4j:slf4j-api", "2.0.9"),
    ("com.example:shared", "1.4.0"),
];

const POM: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent>
    <groupId>com.example</groupId>
    <artifactId>parent</artifactId>
    <version>1.4.0</version>
  </parent>
  <artifactId>app</artifactId>
  <properties>
    <jackson.version>2.15.2</jackson.version>
  </properties>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.slf4j</groupId>
        <artifactId>slf4j-api</artifactId>
        <version>2.0.9</version>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>com.fasterxml.jackson.core</groupId>
      <artifactId>jackson-databind</artifactId>
      <version>${jackson.version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-api</artifactId>
    </dependency>
    <dependency>
      <groupId>${project.groupId}</groupId>
      <artifactId>shared</artifactId>
      <version>${project.version}</version>
    </dependency>
    <dependency>
      <groupId>junit</groupId>
      <artifactId>junit</artifactId>
      <version>4.13.2</version>
      <scope>test</scope>
    </dependency>
  </dependencies>
</project>
"#;

fn cargo_lock(n: usize) -> String {
    let mut s = String::from("# This file is automatically @generated by Cargo.\nversion = 3\n");
    for i in 0..n {
        let _ = write!(
            s,
            "\n[[package]]\nname = \"crate-{i}\"\nversion = \"{}\"\n",
            version(i)
        );
        if i + 1 < n {
            let _ = writeln!(s, "dependencies = [\n \"crate-{}\",\n]", i + 1);
        }
    }
    s
}

fn is_dev(i: usize) -> bool {
    i % 10 == 9
}

fn npm_v1(n: usize) -> String {
    let mut deps = Map::new();
    for i in 0..n {
        let mut d = json!({"version": version(i), "integrity": format!("sha512-{i}")});
        if is_dev(i) {
            d["dev"] = json!(true);
        }
        if i % 50 == 1 {
            d["requires"] = json!({"inner": "^9.0.0"});
            d["dependencies"] = json!({"inner": {"version": format!("9.0.{i}")}});
        }
        deps.insert(format!("pkg-{i}"), d);
    }
    pretty(
        &json!({"name": "app", "version": "1.0.0", "lockfileVersion": 1, "requires": true, "dependencies": deps}),
    )
}

fn npm_v2(n: usize, lockfile_version: u32) -> String {
    let mut packages = Map::new();
    let direct: Map<String, Value> = (0..n)
        .filter(|i| i % 3 == 0 && !is_dev(*i))
        .map(|i| (format!("pkg-{i}"), json!(format!("^{}", version(i)))))
        .collect();
    packages.insert(
        "".into(),
        json!({"name": "app", "version": "1.0.0", "dependencies": direct}),
    );
    for i in 0..n {
        let name = if i % 7 == 0 {
            format!("@scope/pkg-{i}")
        } else {
            format!("pkg-{i}")
        };
        let mut p = json!({"version": version(i), "integrity": format!("sha512-{i}")});
        if is_dev(i) {
            p["dev"] = json!(true);
        }
        if i % 50 == 1 {
            packages.insert(
                format!("node_modules/{name}/node_modules/inner"),
                json!({"version": format!("9.0.{i}")}),
            );
            p["dependencies"] = json!({"inner": "^9.0.0"});
        }
        packages.insert(format!("node_modules/{name}"), p);
    }
    let mut doc = json!({"name": "app", "version": "1.0.0", "lockfileVersion": lockfile_version, "requires": true, "packages": packages});
    if lockfile_version == 2 {
        doc["dependencies"] = json!({});
    }
    pretty(&doc)
}

fn yarn_classic(n: usize) -> String {
    let mut s = String::from(
        "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n",
    );
    for i in 0..n {
        let name = if i % 7 == 0 {
            format!("\"@scope/pkg-{i}")
        } else {
            format!("pkg-{i}")
        };
        let q = if i % 7 == 0 { "\"" } else { "" };
        let _ = write!(
            s,
            "\n{name}@^{v}{q}, {name}@~{v}{q}:\n  version \"{v}\"\n  integrity sha512-{i}\n",
            v = version(i)
        );
        if i + 1 < n {
            let _ = write!(
                s,
                "  dependencies:\n    pkg-{} \"^{}\"\n",
                i + 1,
                version(i + 1)
            );
        }
    }
    s
}

fn yarn_berry(n: usize) -> String {
    let mut s = String::from(
        "# This file is generated by running \"yarn install\" inside your project.\n\n__metadata:\n  version: 8\n  cacheKey: 10c0\n",
    );
    let _ = write!(
        s,
        "\n\"app@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"app@workspace:.\"\n  languageName: unknown\n  linkType: soft\n"
    );
    for i in 0..n {
        let name = if i % 7 == 0 {
            format!("@scope/pkg-{i}")
        } else {
            format!("pkg-{i}")
        };
        let _ = write!(
            s,
            "\n\"{name}@npm:^{v}\":\n  version: {v}\n  resolution: \"{name}@npm:{v}\"\n  checksum: 10c0/{i}\n  languageName: node\n  linkType: hard\n",
            v = version(i)
        );
    }
    s
}

fn pnpm_v6(n: usize) -> String {
    let mut s = String::from(
        "lockfileVersion: '6.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\ndependencies:\n",
    );
    for i in (0..n).filter(|i| i % 3 == 0 && !is_dev(*i)) {
        let _ = write!(
            s,
            "  pkg-{i}:\n    specifier: ^{v}\n    version: {v}\n",
            v = version(i)
        );
    }
    s.push_str("\npackages:\n\n");
    for i in 0..n {
        let _ = write!(
            s,
            "  /pkg-{i}@{v}:\n    resolution: {{integrity: sha512-{i}}}\n    dev: {}\n\n",
            is_dev(i),
            v = version(i)
        );
    }
    s
}

fn pnpm_v9(n: usize) -> String {
    let mut s = String::from(
        "lockfileVersion: '9.0'\n\nsettings:\n  autoInstallPeers: true\n  excludeLinksFromLockfile: false\n\nimporters:\n\n  .:\n    dependencies:\n",
    );
    for i in (0..n).filter(|i| !is_dev(*i)) {
        let _ = write!(
            s,
            "      pkg-{i}:\n        specifier: ^{v}\n        version: {v}\n",
            v = version(i)
        );
    }
    s.push_str("    devDependencies:\n");
    for i in (0..n).filter(|i| is_dev(*i)) {
        let _ = write!(
            s,
            "      pkg-{i}:\n        specifier: ^{v}\n        version: {v}\n",
            v = version(i)
        );
    }
    s.push_str("\npackages:\n\n");
    for i in 0..n {
        let _ = write!(
            s,
            "  pkg-{i}@{v}:\n    resolution: {{integrity: sha512-{i}}}\n\n",
            v = version(i)
        );
    }
    s.push_str("snapshots:\n\n");
    for i in 0..n {
        let _ = write!(s, "  pkg-{i}@{v}: {{}}\n\n", v = version(i));
    }
    s
}

fn go_mod(n: usize) -> String {
    let mut s = String::from("module example.com/app\n\ngo 1.22\n\nrequire (\n");
    for i in 0..n {
        let indirect = if i % 4 == 3 { " // indirect" } else { "" };
        // Major versions above 1 would need a `/vN` path suffix.
        let _ = writeln!(
            s,
            "\tgithub.com/org{}/mod-{i} v1.{}.{i}{indirect}",
            i % 9,
            i % 10
        );
    }
    s.push_str(")\n");
    s
}

fn poetry(n: usize) -> String {
    let mut s = String::from(
        "# This file is automatically @generated by Poetry 1.8.3 and should not be changed by hand.\n",
    );
    for i in 0..n {
        let group = if is_dev(i) { "dev" } else { "main" };
        let _ = write!(
            s,
            "\n[[package]]\nname = \"py-pkg-{i}\"\nversion = \"{}\"\ndescription = \"\"\noptional = false\npython-versions = \">=3.8\"\ngroups = [\"{group}\"]\nfiles = []\n",
            version(i)
        );
    }
    s.push_str(
        "\n[metadata]\nlock-version = \"2.0\"\npython-versions = \"^3.11\"\ncontent-hash = \"0\"\n",
    );
    s
}

fn pipfile(n: usize) -> String {
    let default: Map<String, Value> = (0..n)
        .map(|i| {
            (
                format!("pipenv-pkg-{i}"),
                json!({"hashes": [], "version": format!("=={}", version(i))}),
            )
        })
        .collect();
    pretty(
        &json!({"_meta": {"hash": {"sha256": "0"}, "pipfile-spec": 6, "requires": {"python_version": "3.11"}, "sources": []}, "default": default, "develop": {"pytest": {"version": "==8.0.0"}}}),
    )
}

fn requirements(n: usize) -> String {
    let mut s = String::from("# pinned requirements\n-r base.txt\nflask>=2.0\n");
    for i in 0..n {
        match i % 4 {
            0 => {
                let _ = writeln!(s, "req-{i}=={}", version(i));
            }
            1 => {
                let _ = writeln!(s, "req-{i} == {}  # pinned", version(i));
            }
            2 => {
                let _ = writeln!(
                    s,
                    "req-{i}[extra]=={} ; python_version >= \"3.8\"",
                    version(i)
                );
            }
            _ => {
                let _ = writeln!(s, "req-{i}=={} \\\n    --hash=sha256:{i:064}", version(i));
            }
        }
    }
    s
}

fn gemfile(n: usize) -> String {
    let mut s = String::from("GEM\n  remote: ./vendor/cache/\n  specs:\n");
    for i in 0..n {
        let platform = if i % 11 == 0 { "-x86_64-linux" } else { "" };
        let _ = writeln!(s, "    gem-{i} ({}{platform})", version(i));
        if i + 1 < n && i % 2 == 0 {
            let _ = writeln!(s, "      gem-{} (>= 0)", i + 1);
        }
    }
    s.push_str("\nPLATFORMS\n  ruby\n  x86_64-linux\n\nDEPENDENCIES\n");
    for i in (0..n).step_by(5) {
        let _ = writeln!(s, "  gem-{i}");
    }
    s.push_str("\nBUNDLED WITH\n   2.5.3\n");
    s
}

fn composer(n: usize) -> String {
    let entry = |i: usize| {
        let mut e = json!({"name": format!("vendor{}/pkg-{i}", i % 5), "version": version(i), "license": ["MIT"], "type": "library"});
        if i + 1 < n {
            e["require"] =
                json!({"php": ">=8.1", format!("vendor{}/pkg-{}", (i + 1) % 5, i + 1): "^1"});
        }
        e
    };
    let packages: Vec<Value> = (0..n).filter(|i| !is_dev(*i)).map(entry).collect();
    let dev: Vec<Value> = (0..n).filter(|i| is_dev(*i)).map(entry).collect();
    pretty(
        &json!({"_readme": ["generated"], "content-hash": "0", "packages": packages, "packages-dev": dev}),
    )
}

fn nuget(n: usize) -> String {
    let deps: Map<String, Value> = (0..n)
        .map(|i| {
            let kind = if i % 4 == 0 { "Direct" } else { "Transitive" };
            (
                format!("Pkg.Number{i}"),
                json!({"type": kind, "resolved": version(i), "contentHash": "0"}),
            )
        })
        .chain(std::iter::once((
            "app.core".to_owned(),
            json!({"type": "Project"}),
        )))
        .collect();
    pretty(&json!({"version": 1, "dependencies": {"net8.0": deps}}))
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value serialises");
    s.push('\n');
    s
}
