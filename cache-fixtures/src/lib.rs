//! Test fixtures of scancache: image archives built in code for tests and benchmarks,
//! and the generator of the committed samples (`cargo xtask gen-samples`).
//!
//! Everything here is deterministic: fixed modification times, owners and modes, entries
//! sorted by name, JSON written from structs in a fixed field order and gzip headers
//! without time stamps, so building the same thing twice gives identical bytes. The
//! samples' package databases and release files are data files under `data/`, included
//! at compile time ([`data`]).
//!
//! ```
//! use cache_fixtures::{Compression, ImageBuilder, LayerBuilder, docker_save};
//! let image = ImageBuilder::new(&["demo:1"]).layer(
//!     &LayerBuilder::new().file("etc/alpine-release", "3.20.3\n"),
//!     Compression::Gzip,
//!     "ADD file:demo in /",
//! );
//! let archive: Vec<u8> = docker_save(&[&image]);
//! assert!(archive.len() > 1024);
//! ```

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod bulk;
pub mod data;
pub mod extreme;
mod image;
mod layout;
mod samples;
mod tar;

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

pub use bulk::bulk_images;
pub use image::{BuiltLayer, ImageBuilder, LayerBuilder};
pub use layout::{
    docker_save, docker_save_entries, docker_save_oci, oci_archive, oci_entries, write_entries,
    write_oci_dir,
};
pub use samples::{SAMPLE_FILES, alpine_image, debian_image, pair_images, write_samples};
pub use tar::{TarWriter, tar_of};

/// The modification time of every generated entry (2024-01-01T00:00:00Z).
pub const MTIME: u64 = 1_704_067_200;
/// The `created` time of every generated image config.
pub const CREATED: &str = "2024-01-01T00:00:00Z";
/// The zstd level of every zstd stream written.
const ZSTD_LEVEL: i32 = 3;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// How a layer is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip (default level, no time stamp or file name in the header).
    Gzip,
    /// zstd (level 3).
    Zstd,
}

impl Compression {
    /// The OCI layer media type for this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// Compresses `data` deterministically.
pub fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = gzip_writer(Vec::new());
            enc.write_all(data)
                .and_then(|()| enc.finish())
                .expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => {
            zstd::stream::encode_all(data, ZSTD_LEVEL).expect("zstd encoding in memory cannot fail")
        }
    }
}

/// A gzip stream into `out`, as [`compress`] writes it: default level, no time stamp.
pub fn gzip_writer<W: Write>(out: W) -> flate2::write::GzEncoder<W> {
    flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, flate2::Compression::default())
}

/// A zstd stream into `out` at the level [`compress`] uses.
pub fn zstd_writer<W: Write>(out: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}
