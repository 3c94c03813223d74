//! The fuzzing harness of scancache: byte-mutation fuzzing of the archive, tar, manifest,
//! compression and package-database readers on the stable toolchain, and the regression
//! corpus every input that ever crashed, hung or blew a cap is kept in.
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
    Compression, ImageBuilder, LayerBuilder, alpine_image, compress, data, debian_image,
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
pub const TARGETS: [Target; 7] = [
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
];

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
