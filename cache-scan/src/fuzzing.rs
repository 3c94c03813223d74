//! Entry points for the fuzzing harness (`cache-fuzz`): each feeds arbitrary bytes to one
//! reader or parser of this crate with the limits a scan uses, and returns what a caller
//! may check. Not part of the supported API: hidden from the docs and free to change.
//!
//! Every function must return (an error is fine) for every input, within time and
//! memory proportional to the input: a panic, a hang or an allocation out of proportion
//! is a bug.

use std::{
    io::{self, BufReader},
    path::Path,
    sync::atomic::{AtomicBool, AtomicU64},
};

use cache_core::{Digest, Package};

use crate::{
    LayerWork,
    analyser::{OsFiles, apk, dpkg, os},
    archive::Archive,
    codec::{Capped, Decoder, Format},
    image::{LayerRef, read_image},
    layer::{LayerTask, Shared, read_layer},
    limits::{LayerLimits, Tally},
    tarfmt::{Streaming, TarReader},
};

/// Most bytes any entry point decompresses or reads: 64 MiB.
const MAX_OUTPUT: u64 = 64 << 20;

/// Walks `data` as a tar stream, reading every entry's data; returns how many entries it
/// found before the end or the first error.
pub fn tar(data: &[u8]) -> usize {
    let mut tar = TarReader::new(Streaming(data));
    let mut entries = 0;
    while let Ok(Some(_)) = tar.next_entry() {
        entries += 1;
        if io::copy(&mut tar.data(), &mut io::sink()).is_err() {
            break;
        }
    }
    entries
}

/// Judges `data`'s compression by its magic bytes and decompresses it (at most
/// 64 MiB); returns the bytes produced, or `None` on an error.
pub fn decompress(data: &[u8]) -> Option<u64> {
    let format = Format::sniff(data);
    let decoder = Decoder::new(format, data).ok()?;
    io::copy(&mut Capped::new(decoder, MAX_OUTPUT), &mut io::sink()).ok()
}

/// Reads `data` as one layer's stored bytes (any compression), through the whole layer
/// reader — digests, decompression, tar, every analyser — with the default caps; returns
/// the packages found, or `None` when the layer fails (a digest mismatch included: the
/// analysis still runs before the digests are compared).
pub fn layer(data: &[u8]) -> Option<usize> {
    let shared = Shared {
        input: "fuzz.tar".into(),
        max_db_size: crate::DEFAULT_MAX_DB_SIZE,
        max_layer_size: MAX_OUTPUT,
        limits: LayerLimits {
            max_packages: crate::DEFAULT_MAX_PACKAGES_PER_LAYER,
            max_document: Some(cache_core::DEFAULT_MAX_DOCUMENT_SIZE),
        },
        progress: None,
        cancel: AtomicBool::new(false),
        collapsed: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
    };
    let task = LayerTask {
        layer: LayerRef {
            name: "layer.tar".into(),
            media_type: None,
            blob_digest: None,
            size: None,
            diff_id: Digest::from_sha256([0; 32]),
            created_by: String::new(),
        },
        work: LayerWork::Analyse,
    };
    let blob = read_layer(&task, data, &shared).ok()??;
    Some(blob.package_infos.iter().map(|i| i.packages.len()).sum())
}

/// Writes `data` to `scratch` and opens it as an image archive (a tar, possibly
/// compressed as a whole), reading its index, manifest and config; returns the number of
/// layers of the image it picks, or `None` on an error.
pub fn archive(data: &[u8], scratch: &Path) -> Option<usize> {
    std::fs::write(scratch, data).ok()?;
    let archive = Archive::open(scratch, MAX_OUTPUT).ok()?;
    let image = read_image(&archive, None).ok()?;
    Some(image.layers.len())
}

/// Parses `data` as a dpkg status file as a scan does (streaming, duplicates collapsed,
/// default caps); returns the packages, or `None` when a cap stopped it.
pub fn dpkg(data: &[u8]) -> Option<Vec<Package>> {
    packages(data, dpkg::parse_reader)
}

/// Parses `data` as an apk installed database as a scan does, as [`dpkg`](fn@dpkg) does
/// a dpkg status file.
pub fn apk(data: &[u8]) -> Option<Vec<Package>> {
    packages(data, apk::parse_reader)
}

type Parser = fn(
    &mut dyn io::BufRead,
    &mut Tally,
) -> Result<Vec<crate::analyser::parsed::Parsed>, crate::limits::Stop>;

fn packages(data: &[u8], parse: Parser) -> Option<Vec<Package>> {
    let mut tally = Tally::new(LayerLimits {
        max_packages: crate::DEFAULT_MAX_PACKAGES_PER_LAYER,
        max_document: Some(cache_core::DEFAULT_MAX_DOCUMENT_SIZE),
    });
    let mut reader = BufReader::new(data);
    let mut parsed = parse(&mut reader, &mut tally).ok()?;
    crate::analyser::parsed::resolve_depends_within(&mut parsed, &mut tally).ok()?;
    Some(parsed.into_iter().map(|p| p.package).collect())
}

/// Reads `data` as each OS release file and as `etc/apk/repositories`; returns the OS
/// family found from `etc/os-release`, if any.
pub fn os_release(data: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(data).into_owned();
    let _ = os::apk_repository(&text);
    for files in [
        OsFiles {
            alpine_release: Some(text.clone()),
            ..OsFiles::default()
        },
        OsFiles {
            debian_version: Some(text.clone()),
            ..OsFiles::default()
        },
    ] {
        let _ = files.detect();
    }
    let files = OsFiles {
        etc_os_release: Some(text),
        ..OsFiles::default()
    };
    files.detect().map(|o| o.family)
}
