//! The fuzzing harness of scancache: byte-mutation fuzzing of the archive, tar, manifest,
//! compression and package-database readers, of the language analysers (ELF with Go
//! build information and cargo-auditable data, zip/jar, `package.json`, Python metadata,
//! the other package manifests) and of the server's `PutBlob` fast path (which must store
//! what its general path stores) on the stable toolchain, and the regression corpus every
//! input that ever crashed, hung or blew a cap is kept in.
//!
//! Each [`Target`] feeds bytes to one entry point of `cache_scan::fuzzing` (hidden from
//! cache-scan's public docs). [`Fuzzer`] starts from structure-aware seeds built with
//! `cache-fixtures` — real images, layers, package databases — and mutates them: bit
//! flips, interesting bytes, inserted, removed and repeated runs, splices of two seeds,
//! and for layers and archives mutations of the plain tar that are then compressed again,
//! so the parsers behind a decompressor see damaged input, not only the decompressor.
//! There is no coverage feedback (stable Rust has no sanitizer-coverage instrumentation
//! here); the seeds and the structured mutations stand in for it.
//!
//! `cargo xtask fuzz [TARGET] [--seconds N]` runs the `cache-fuzz` binary, which also
//! watches every input for a panic, a run longer than [`SLOW`] and an allocation peak
//! above [`MEMORY_CAP`], and saves such an input under `regressions/<target>/`. The test
//! `regressions` (part of `cargo xtask itest`) replays every saved input and every seed.

#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use cache_fixtures::{
    Compression, ImageBuilder, LayerBuilder, alpine_image, binaries, compress, data, debian_image,
    docker_save, docker_save_oci, extreme, oci_archive,
};

/// An input that runs longer than this is saved as slow (a hang stops the run).
pub const SLOW: Duration = Duration::from_secs(2);

/// An input whose run allocates more than this at its peak is saved as over the memory
/// cap: 256 MiB, the bound a scan keeps with default caps.
pub const MEMORY_CAP: u64 = 256 << 20;

/// One fuzzed entry point.
pub struct Target {
    /// The name `cargo xtask fuzz NAME` selects it by.
    pub name: &'static str,
    /// Runs one input; `scratch` is a file path the target may write (archives are
    /// opened from a file).
    pub run: fn(&[u8], &Path),
    /// The seeds mutations start from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Whether a mutated input may be the plain tar of a seed compressed again.
    pub rewrap: bool,
}

/// Every target, in the order `cargo xtask fuzz` runs them.
pub const TARGETS: [Target; 27] = [
    Target {
        name: "tar",
        run: |d, _| {
            cache_scan::fuzzing::tar(d);
        },
        seeds: layer_tars,
        rewrap: false,
    },
    Target {
        name: "compression",
        run: |d, _| {
            cache_scan::fuzzing::decompress(d);
        },
        seeds: compressed,
        rewrap: true,
    },
    Target {
        name: "layer",
        run: |d, _| {
            cache_scan::fuzzing::layer(d);
        },
        seeds: layer_tars,
        rewrap: true,
    },
    Target {
        name: "archive",
        run: |d, scratch| {
            cache_scan::fuzzing::archive(d, scratch);
        },
        seeds: archives,
        rewrap: true,
    },
    Target {
        name: "dpkg",
        run: |d, _| {
            cache_scan::fuzzing::dpkg(d);
        },
        seeds: dpkg_seeds,
        rewrap: false,
    },
    Target {
        name: "apk",
        run: |d, _| {
            cache_scan::fuzzing::apk(d);
        },
        seeds: || {
            vec![
                data::ALPINE_INSTALLED.into(),
                data::ALPINE_INSTALLED_CURL.into(),
            ]
        },
        rewrap: false,
    },
    Target {
        name: "os-release",
        run: |d, _| {
            cache_scan::fuzzing::os_release(d);
        },
        seeds: || {
            [
                data::DEBIAN_OS_RELEASE,
                data::ALPINE_OS_RELEASE,
                data::UBUNTU_OS_RELEASE,
                "ID='quoted'\nVERSION_ID=\"1\\\"2\"\n",
                "https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n",
            ]
            .map(|s| s.as_bytes().to_vec())
            .to_vec()
        },
        rewrap: false,
    },
    Target {
        name: "cargo-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("Cargo.lock", d);
        },
        seeds: || lockfile_seeds("Cargo.lock"),
        rewrap: false,
    },
    Target {
        name: "package-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("package-lock.json", d);
        },
        seeds: || lockfile_seeds("package-lock.json"),
        rewrap: false,
    },
    Target {
        name: "yarn-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("yarn.lock", d);
        },
        seeds: || lockfile_seeds("yarn.lock"),
        rewrap: false,
    },
    Target {
        name: "pnpm-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("pnpm-lock.yaml", d);
        },
        seeds: || lockfile_seeds("pnpm-lock.yaml"),
        rewrap: false,
    },
    Target {
        name: "go-mod",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("go.mod", d);
        },
        seeds: || lockfile_seeds("go.mod"),
        rewrap: false,
    },
    Target {
        name: "poetry-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("poetry.lock", d);
        },
        seeds: || lockfile_seeds("poetry.lock"),
        rewrap: false,
    },
    Target {
        name: "pipfile-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("Pipfile.lock", d);
        },
        seeds: || lockfile_seeds("Pipfile.lock"),
        rewrap: false,
    },
    Target {
        name: "requirements",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("requirements.txt", d);
        },
        seeds: || lockfile_seeds("requirements.txt"),
        rewrap: false,
    },
    Target {
        name: "gemfile-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("Gemfile.lock", d);
        },
        seeds: || lockfile_seeds("Gemfile.lock"),
        rewrap: false,
    },
    Target {
        name: "composer-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("composer.lock", d);
        },
        seeds: || lockfile_seeds("composer.lock"),
        rewrap: false,
    },
    Target {
        name: "nuget-lock",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("packages.lock.json", d);
        },
        seeds: || lockfile_seeds("packages.lock.json"),
        rewrap: false,
    },
    Target {
        name: "pom",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("pom.xml", d);
        },
        seeds: || lockfile_seeds("pom.xml"),
        rewrap: false,
    },
    Target {
        name: "cargo-toml",
        run: |d, _| {
            cache_scan::fuzzing::lockfile("Cargo.toml", d);
        },
        seeds: || lockfile_seeds("Cargo.toml"),
        rewrap: false,
    },
    Target {
        name: "sbom",
        run: |d, _| {
            cache_scan::fuzzing::sbom(d);
        },
        seeds: sbom_seeds,
        rewrap: false,
    },
    Target {
        name: "elf",
        run: |d, _| {
            cache_scan::fuzzing::executable(d);
        },
        seeds: elf_seeds,
        rewrap: false,
    },
    Target {
        name: "jar",
        run: |d, _| {
            cache_scan::fuzzing::jar(d);
        },
        seeds: jar_seeds,
        rewrap: false,
    },
    Target {
        name: "package-json",
        run: |d, _| {
            cache_scan::fuzzing::package_json(d);
        },
        seeds: package_json_seeds,
        rewrap: false,
    },
    Target {
        name: "python-metadata",
        run: |d, _| {
            cache_scan::fuzzing::python_metadata(d);
        },
        seeds: python_seeds,
        rewrap: false,
    },
    Target {
        name: "manifests",
        run: |d, _| {
            cache_scan::fuzzing::manifests(d);
        },
        seeds: manifest_seeds,
        rewrap: false,
    },
    Target {
        name: "put-blob",
        run: |d, _| put_blob_paths_agree(d),
        seeds: put_blob_seeds,
        rewrap: false,
    },
];

/// The server's `PutBlob` fast path (a protobuf request transcoded straight into the
/// stored document) must store exactly what the general path (decode, convert, encode)
/// stores, and take only requests that path decodes; anything else panics, which the
/// fuzzer saves.
fn put_blob_paths_agree(body: &[u8]) {
    use cache_server::proto::cache::PutBlobRequest;
    use prost::Message;
    let Some(fast) = cache_server::convert::transcode::put_blob_request(body) else {
        return;
    };
    let general =
        PutBlobRequest::decode(body).expect("the fast path took a request protobuf refuses");
    assert_eq!(
        fast.diff_id, general.diff_id,
        "the paths read different IDs"
    );
    let blob = general
        .blob_info
        .expect("the fast path took a request without a blob");
    let stored = cache_core::codec::encode(&cache_core::BlobInfo::from(blob));
    assert!(
        fast.document == stored,
        "the paths store different documents"
    );
}

/// Real requests of the reference client (captured on the wire, in cache-server's test
/// data) and one with every package field set.
fn put_blob_seeds() -> Vec<Vec<u8>> {
    use cache_server::proto::{
        cache::{BlobInfo, PutBlobRequest},
        common::{
            Application, BuildInfo, Layer, Location, Os, Package, PackageInfo, PackageRepository,
            PkgIdentifier,
        },
    };
    use prost::Message;
    let package = |n: i32| Package {
        id: format!("pkg{n}@1.0-{n}"),
        name: format!("pkg{n}"),
        version: "1.0".into(),
        release: n.to_string(),
        epoch: n,
        identifier: Some(PkgIdentifier {
            purl: format!("pkg:npm/pkg{n}@1.0"),
            bom_ref: "ref".into(),
            uid: "0123abcd".into(),
        }),
        arch: "amd64".into(),
        src_name: "src\"quoted\"".into(),
        src_epoch: -n,
        licenses: vec!["MIT".into(), "Apache-2.0".into()],
        locations: vec![Location {
            start_line: 4,
            end_line: 9,
        }],
        layer: Some(Layer {
            digest: "sha256:aa".into(),
            size: 7,
            ..Layer::default()
        }),
        file_path: "app/package-lock.json".into(),
        depends_on: vec!["dep@2".into()],
        dev: true,
        indirect: true,
        relationship: n,
        repository: Some(PackageRepository {
            class: "official".into(),
        }),
        modularitylabel: "nodejs:18:1".into(),
        build_info: Some(BuildInfo {
            content_sets: vec!["rhel-8".into()],
            nvr: "ubi8-1".into(),
            arch: "x86_64".into(),
        }),
        installed_files: vec!["usr/bin/x".into()],
        ..Package::default()
    };
    let every_field = PutBlobRequest {
        diff_id: format!("sha256:{:064x}", 1),
        blob_info: Some(BlobInfo {
            schema_version: 2,
            os: Some(Os {
                family: "alpine".into(),
                name: "3.20.3".into(),
                eosl: true,
                extended: true,
                supplier: "s".into(),
            }),
            package_infos: vec![PackageInfo {
                file_path: "lib/apk/db/installed".into(),
                packages: vec![package(1), package(2)],
            }],
            applications: vec![Application {
                r#type: "npm".into(),
                file_path: "package-lock.json".into(),
                packages: vec![package(3)],
            }],
            opaque_dirs: vec!["var/cache/".into()],
            whiteout_files: vec!["etc/gone".into()],
            digest: "sha256:bb".into(),
            size: 5_000_000,
            created_by: "ADD file:base in /".into(),
            ..BlobInfo::default()
        }),
    };
    vec![
        include_bytes!("../../cache-server/tests/data/client-put-blob-os.pb").to_vec(),
        include_bytes!("../../cache-server/tests/data/client-put-blob-lang.pb").to_vec(),
        every_field.encode_to_vec(),
    ]
}

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The directory of `target`'s saved regression inputs.
pub fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

fn sample_images() -> Vec<ImageBuilder> {
    let small = ImageBuilder::new(&["fuzz:1"]).layer(
        &LayerBuilder::new()
            .file("etc/os-release", data::DEBIAN_OS_RELEASE)
            .file(
                "var/lib/dpkg/status",
                data::DEBIAN_STATUS
                    .lines()
                    .take(60)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .whiteout("etc/gone")
            .opaque("var/cache")
            .symlink("etc/alpine-release", "../x"),
        Compression::Gzip,
        "ADD",
    );
    vec![small, alpine_image(), debian_image()]
}

fn layer_tars() -> Vec<Vec<u8>> {
    sample_images()
        .iter()
        .flat_map(|i| i.layers.iter().map(|l| l.tar.clone()))
        .take(4)
        .collect()
}

fn compressed() -> Vec<Vec<u8>> {
    let tar = layer_tars().remove(0);
    let mut two_members = compress(&tar, Compression::Gzip);
    two_members.extend(compress(b"second member", Compression::Gzip));
    vec![
        compress(&tar, Compression::Gzip),
        compress(&tar, Compression::Zstd),
        two_members,
        b"BZh91AY&SY".to_vec(),
        tar,
    ]
}

fn archives() -> Vec<Vec<u8>> {
    let images = sample_images();
    let small = &images[0];
    vec![
        docker_save(&[small]),
        oci_archive(&[small]),
        docker_save_oci(&[small]),
        compress(&docker_save(&[small]), Compression::Gzip),
    ]
}

fn dpkg_seeds() -> Vec<Vec<u8>> {
    vec![
        data::DEBIAN_STATUS.into(),
        data::UBUNTU_STATUS.into(),
        extreme::identical_stanzas(50),
        b"Package: a\nStatus: hold ok installed\nVersion: 1:2-3\nProvides: b (= 1)\nDepends: b | c, a\n\nPackage: a\nArchitecture: i386\nVersion: 2\n".to_vec(),
    ]
}

fn elf_seeds() -> Vec<Vec<u8>> {
    vec![
        binaries::go_binary("go1.22.5", data::LANG_GO_MODINFO),
        binaries::go_binary("go1.21.0", "path\tcommand-line-arguments\n"),
        binaries::rust_binary(data::LANG_RUST_AUDIT),
        binaries::elf(&[
            (".text", true, vec![0x90; 64]),
            (".comment", false, b"GCC".to_vec()),
        ]),
    ]
}

fn jar_seeds() -> Vec<Vec<u8>> {
    let manifest = |extra: &str| format!("Manifest-Version: 1.0\r\n{extra}\r\n").into_bytes();
    let inner = binaries::zip(&[(
        "META-INF/MANIFEST.MF",
        manifest(
            "Implementation-Title: commons-text\r\nImplementation-Version: 1.10.0\r\nImplementation-Vendor-Id: org.apache.commons\r\n",
        ),
    )]);
    vec![
        binaries::zip(&[
            ("META-INF/MANIFEST.MF", manifest("Main-Class: demo.App\r\n")),
            (
                "META-INF/maven/com.example/demo-app/pom.properties",
                b"groupId=com.example\nartifactId=demo-app\nversion=1.0.0\n".to_vec(),
            ),
            ("BOOT-INF/lib/commons-text-1.10.0.jar", inner.clone()),
        ]),
        inner,
        binaries::zip(&[("a/b.class", vec![0xca, 0xfe, 0xba, 0xbe])]),
    ]
}

fn package_json_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"name":"sample-app","version":"1.0.0","license":"MIT","dependencies":{"left-pad":"^1.3.0"}}"#,
        r#"{"name":"@types/node","version":"20.11.5","license":{"type":"MIT","url":"x"}}"#,
        r#"{"name":"old","version":"0.1.0","licenses":[{"type":"MIT"},{"type":"Apache-2.0"}]}"#,
        r#"{"name":"rxjs/ajax","main":"./index.js","nested":{"a":[1,2,{"b":null}]}}"#,
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}

fn python_seeds() -> Vec<Vec<u8>> {
    [
        data::LANG_METADATA_REQUESTS,
        "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\nbody\n",
        "Metadata-Version: 2.4\nName: typing_extensions\nVersion: 4.12.2\nLicense-Expression: PSF-2.0\n\n",
        "Metadata-Version: 1.1\nName: chardet\nVersion: 5.1.0\nClassifier: License :: OSI Approved :: GNU Library or Lesser General Public License (LGPL)\nLicense: UNKNOWN\n",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}

fn manifest_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"packages":[{"name":"monolog/monolog","version":"2.9.1","license":["MIT"],"require":{"php":">=7.2","psr/log":"^1.0"}},{"name":"psr/log","version":"1.1.4","license":["MIT"]}],"dev":false}"#,
        r#"{"packages":[{"name":"psr/log","version":"1.1.4","license":["MIT"],"require":{"php":">=5.3.0"}}],"dev":true,"dev-package-names":[]}"#,
        r#"{"name":"zlib","version":"1.2.13","license":"Zlib","build":"h5eee18b_0"}"#,
        data::LANG_DEPS_JSON,
        "Gem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.licenses = [\"MIT\".freeze]\nend\n",
        data::LANG_COPYRIGHT_BASH,
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}

/// A small, fast pseudo-random generator (xorshift64*), so runs are reproducible from a
/// seed and no dependency is needed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Bytes that often sit at boundaries: lengths, NULs, digits and separators of the
/// formats fuzzed.
const INTERESTING: [u8; 16] = [
    0, 0xff, 0x7f, 0x80, b'0', b'7', b' ', b'\n', b':', b'/', b'"', b'{', b'}', b'.', 0x1f, 0x8b,
];

/// Makes mutated inputs from a target's seeds.
pub struct Fuzzer {
    seeds: Vec<Vec<u8>>,
    rewrap: bool,
    rng: Rng,
}

impl Fuzzer {
    /// A fuzzer of `target` with the random seed `seed`.
    pub fn new(target: &Target, seed: u64) -> Fuzzer {
        Fuzzer {
            seeds: (target.seeds)(),
            rewrap: target.rewrap,
            rng: Rng::new(seed),
        }
    }

    /// The seeds, unmutated.
    pub fn seeds(&self) -> &[Vec<u8>] {
        &self.seeds
    }

    /// The next input: a seed with one to eight mutations, sometimes compressed again.
    pub fn next_input(&mut self) -> Vec<u8> {
        let i = self.rng.below(self.seeds.len());
        let mut input = self.seeds.get(i).cloned().unwrap_or_default();
        for _ in 0..=self.rng.below(8) {
            self.mutate(&mut input);
        }
        if self.rewrap && self.rng.below(3) == 0 {
            let compression = [Compression::Gzip, Compression::Zstd][self.rng.below(2)];
            input = compress(&input, compression);
        }
        input
    }

    fn mutate(&mut self, input: &mut Vec<u8>) {
        let len = input.len();
        let at = self.rng.below(len.max(1));
        match self.rng.below(8) {
            0 if len > 0 => input[at] ^= 1 << self.rng.below(8),
            1 if len > 0 => input[at] = INTERESTING[self.rng.below(INTERESTING.len())],
            2 => {
                let n = 1 + self.rng.below(64);
                let byte = self.rng.next_u64() as u8;
                input.splice(at..at, std::iter::repeat_n(byte, n));
            }
            3 if len > 0 => {
                let n = 1 + self.rng.below(len.min(4096));
                input.drain(at..(at + n).min(len));
            }
            4 if len > 0 => {
                // Repeat a run (a stanza, a header) a few times.
                let n = 1 + self.rng.below(len.saturating_sub(at).min(512));
                let run: Vec<u8> = input[at..at + n].to_vec();
                for _ in 0..1 + self.rng.below(16) {
                    input.splice(at..at, run.iter().copied());
                }
            }
            5 => {
                // Splice in part of another seed.
                let other = &self.seeds[self.rng.below(self.seeds.len())];
                if !other.is_empty() {
                    let from = self.rng.below(other.len());
                    let n = 1 + self.rng.below((other.len() - from).min(2048));
                    let part = other[from..from + n].to_vec();
                    input.splice(at..at, part);
                }
            }
            6 if len > 0 => {
                // Overwrite with ASCII digits: tar sizes and modes are octal text.
                let n = 1 + self.rng.below(12);
                for b in input.iter_mut().skip(at).take(n) {
                    *b = b'0' + self.rng.below(10) as u8;
                }
            }
            _ => input.truncate(at),
        }
    }
}

/// The generated project's files named `file` (each lockfile kind in its formats:
/// npm v1 to v3, yarn classic and Berry, pnpm 6 and 9), as seeds.
fn lockfile_seeds(file: &str) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = cache_fixtures::project_files(12)
        .into_iter()
        .filter(|(path, _)| path.rsplit('/').next() == Some(file))
        .map(|(_, text)| text.into_bytes())
        .collect();
    if file == "Cargo.toml" {
        seeds.push(
            b"[package]\nname = \"a\"\nversion = \"1.0.0\"\n[dependencies]\nb = \"0.1\"\n[workspace]\nmembers = [\"x/*\"]\n"
                .to_vec(),
        );
    }
    seeds
}

/// Small SBOMs in both formats as scancache and the reference write them, as seeds.
fn sbom_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","metadata":{"component":{"bom-ref":"root","type":"container","name":"x"}},"components":[{"bom-ref":"os","type":"operating-system","name":"debian","version":"12.11"},{"bom-ref":"app","type":"application","name":"Cargo.lock","properties":[{"name":"aquasecurity:trivy:Type","value":"cargo"}]},{"bom-ref":"pkg:deb/debian/curl@7.88.1-10?epoch=1","type":"library","name":"curl","version":"1:7.88.1-10","purl":"pkg:deb/debian/curl@7.88.1-10?epoch=1","licenses":[{"license":{"id":"MIT"}}],"properties":[{"name":"aquasecurity:trivy:PkgID","value":"curl@1:7.88.1-10"}]},{"bom-ref":"pkg:cargo/a@1.0.0","type":"library","name":"a","version":"1.0.0","purl":"pkg:cargo/a@1.0.0","components":[{"type":"library","name":"n","version":"2"}]}],"dependencies":[{"ref":"os","dependsOn":["pkg:deb/debian/curl@7.88.1-10?epoch=1"]},{"ref":"app","dependsOn":["pkg:cargo/a@1.0.0"]},{"ref":"pkg:cargo/a@1.0.0","dependsOn":["os"]}]}"#,
        r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","packages":[{"SPDXID":"SPDXRef-OS","name":"alpine","versionInfo":"3.20.3","primaryPackagePurpose":"OPERATING-SYSTEM"},{"SPDXID":"SPDXRef-App","name":"go.mod","primaryPackagePurpose":"APPLICATION","annotations":[{"comment":"Type: gomod"}]},{"SPDXID":"SPDXRef-P1","name":"musl","versionInfo":"1.2.5-r0","licenseDeclared":"MIT AND BSD-2-Clause","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:apk/alpine/musl@1.2.5-r0"}],"annotations":[{"comment":"PkgID: musl@1.2.5-r0"}]},{"SPDXID":"SPDXRef-P2","name":"github.com/a/b","versionInfo":"v1.0.0","primaryPackagePurpose":"LIBRARY"}],"relationships":[{"spdxElementId":"SPDXRef-OS","relationshipType":"CONTAINS","relatedSpdxElement":"SPDXRef-P1"},{"spdxElementId":"SPDXRef-App","relationshipType":"CONTAINS","relatedSpdxElement":"SPDXRef-P2"},{"spdxElementId":"SPDXRef-P2","relationshipType":"DEPENDS_ON","relatedSpdxElement":"SPDXRef-P1"}]}"#,
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}
