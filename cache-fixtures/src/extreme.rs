//! Extreme images for the tests and benchmarks of bounded cost: a package database of
//! one entry repeated millions of times, and many layers of one small file each.

use crate::{Compression, ImageBuilder, LayerBuilder};

/// One dpkg stanza, 50 bytes: the unit of [`identical_stanzas`].
pub const STANZA: &str = "Package: x\nStatus: install ok installed\nVersion: 1\n\n";

/// A dpkg status file of `n` identical [`STANZA`]s (`n` × 50 bytes).
pub fn identical_stanzas(n: usize) -> Vec<u8> {
    STANZA.repeat(n).into_bytes()
}

/// A single-layer image whose `var/lib/dpkg/status` is `n` identical stanzas: 3,000,000
/// make the 150 MB database of the hostile-image benchmark.
pub fn hostile_image(n: usize) -> ImageBuilder {
    ImageBuilder::new(&["extreme/hostile:1"]).layer(
        &LayerBuilder::new()
            .file("etc/debian_version", "12.11\n")
            .file("var/lib/dpkg/status", identical_stanzas(n)),
        Compression::None,
        "ADD status /var/lib/dpkg/status",
    )
}

/// The content of the `i`-th file of [`many_layers`]: `size` bytes.
fn small_file(i: usize, size: usize) -> Vec<u8> {
    let line = format!("file {i}\n");
    line.repeat(size / line.len() + 1)
        .into_bytes()
        .into_iter()
        .take(size)
        .collect()
}

/// `layers` files of `size` bytes, as an image of one layer per file and as an image of
/// one layer holding them all (the same files, so the two scans do the same analysis).
pub fn many_layers(layers: usize, size: usize) -> (ImageBuilder, ImageBuilder) {
    let path = |i: usize| format!("usr/share/extreme/f{i:05}");
    let mut many = ImageBuilder::new(&["extreme/many:1"]);
    let mut all = LayerBuilder::new();
    for i in 0..layers {
        let layer = LayerBuilder::new().file(&path(i), small_file(i, size));
        many = many.layer(&layer, Compression::None, &format!("ADD f{i} /"));
        all = all.file(&path(i), small_file(i, size));
    }
    let one = ImageBuilder::new(&["extreme/one:1"]).layer(&all, Compression::None, "ADD . /");
    (many, one)
}
