//! Many small, distinct images, for filling a cache with hundreds of entries quickly:
//! each image is a Debian-like base layer (with a package database, so its analysis is a
//! document of several KiB) and many one-file layers (each a small document).

use crate::{Compression, ImageBuilder, LayerBuilder, data};

/// `images` images of `layers` layers each (at least one: the base), every layer distinct
/// from every other layer of every image, so scanning them all stores `images` image
/// records and `images × layers` layer results. Image `i` is tagged `bulk/image-<i>:1`.
/// Layers are uncompressed, which keeps building and reading them cheap.
pub fn bulk_images(images: usize, layers: usize) -> Vec<ImageBuilder> {
    (0..images).map(|i| bulk_image(i, layers)).collect()
}

fn bulk_image(i: usize, layers: usize) -> ImageBuilder {
    let base = LayerBuilder::new()
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("usr/lib/os-release", data::DEBIAN_OS_RELEASE)
        .file("etc/debian_version", "12.11\n")
        .file("etc/bulk-image", format!("{i}\n"))
        .file("var/lib/dpkg/status", data::DEBIAN_STATUS);
    let mut image = ImageBuilder::new(&[&format!("bulk/image-{i}:1")]).layer(
        &base,
        Compression::None,
        &format!("ADD base-{i}.tar /"),
    );
    for n in 1..layers {
        let layer = LayerBuilder::new().file(
            &format!("srv/bulk/{i}/{n}.txt"),
            format!("image {i}, layer {n}\n"),
        );
        image = image.layer(
            &layer,
            Compression::None,
            &format!("RUN /bin/sh -c echo {n} > /srv/bulk/{i}/{n}.txt"),
        );
    }
    image
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_layer_of_every_image_is_distinct_and_deterministic() {
        let images = bulk_images(3, 5);
        assert_eq!(images.len(), 3);
        let diff_ids: HashSet<&str> = images
            .iter()
            .flat_map(|image| image.layers.iter().map(|l| l.diff_id.as_str()))
            .collect();
        assert_eq!(diff_ids.len(), 15);
        let image_ids: HashSet<String> = images.iter().map(ImageBuilder::image_id).collect();
        assert_eq!(image_ids.len(), 3);
        assert_eq!(
            bulk_images(3, 5)[2].image_id(),
            images[2].image_id(),
            "the same bytes every run"
        );
    }
}
