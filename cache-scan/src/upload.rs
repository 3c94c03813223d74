//! [`upload()`]: the reference client's half of a scan against a server — ask which
//! layers the server lacks, analyse only those (verified while streaming, as in
//! [`crate::scan()`]), store each result and then the image record — without reading
//! anything back: the server builds the report (`scancache image --server`). The same
//! half for a directory ([`crate::upload_tree()`]) and an SBOM
//! ([`crate::sbom::upload_sbom()`]), whose one result is uploaded as [`UploadedTarget`]
//! says.

use std::{path::Path, sync::Arc, time::Instant};

use cache_core::{BlobId, Cache};

use crate::{
    ArtifactType, ScanOptions,
    error::Result,
    flight::Held,
    plan::Planner,
    report::LayerCounts,
    run::Runner,
    scan::{ImageKeys, artifact_info, check_layers, image_keys, open, shared},
};

/// What [`upload()`] did: the keys the server now holds the image under, the image's
/// facts from the archive, and how each layer's result was obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uploaded {
    /// The artifact and layer keys, as sent.
    pub keys: ImageKeys,
    /// `sha256` of the image config.
    pub image_id: String,
    /// Tags the archive gives the image.
    pub repo_tags: Vec<String>,
    /// Layer diffIDs, bottom first.
    pub diff_ids: Vec<String>,
    /// CPU architecture from the config.
    pub architecture: String,
    /// Layers analysed here (the server lacked them) and layers it had.
    pub layers: LayerCounts,
}

/// Stores the image at `input` in `cache` the way the reference client fills a server:
/// one `missing_blobs`, the missing layers analysed (in parallel, both digests verified
/// while streaming) and `put_blob` as each is done, then `put_artifact` when the artifact
/// was missing. Nothing is read back. On any error no artifact entry is written.
#[tracing::instrument(skip_all, fields(input = %input.display()))]
pub async fn upload(input: &Path, cache: &dyn Cache, options: &ScanOptions) -> Result<Uploaded> {
    let started = Instant::now();
    let (archive, image) = open(input, options).await?;
    check_layers(&image, options)?;
    let keys = image_keys(&image, options)?;
    let missing = cache.missing_blobs(&keys.artifact, &keys.blobs).await?;
    let mut planner = Planner::new(&image.layers, &keys.blobs);
    let (tasks, mut counts) = planner.plan(&missing.blobs, options.verify_layers);
    // No claims of our own: a server that single-flights claims for its callers in
    // `MissingBlobs` (`scancache server` does), as for the reference client.
    let held = Held::new(cache, None);
    let runner = Runner {
        archive: Arc::new(archive),
        shared: Arc::new(shared(input, options, cache)),
        cache,
        parallelism: options.effective_parallelism(),
        held: &held,
    };
    runner
        .run_reported(tasks, options.progress.as_deref())
        .await?;
    counts.counters = runner.shared.counters();
    if missing.artifact {
        cache
            .put_artifact(&keys.artifact, &artifact_info(&image))
            .await?;
    }
    tracing::info!(
        image_id = %image.image_id,
        layers = counts.total,
        uploaded = counts.analysed,
        on_server = counts.cached,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "uploaded image"
    );
    Ok(Uploaded {
        image_id: image.image_id.to_string(),
        repo_tags: image.repo_tags.clone(),
        diff_ids: image.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        architecture: image.architecture.clone(),
        keys,
        layers: counts,
    })
}

/// Where the one result of a directory or SBOM upload came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetSource {
    /// The server had it: nothing was read or sent.
    OnServer,
    /// The server lacked it and the local cache had it: it was sent without reading the
    /// target's files.
    LocalCache,
    /// The server lacked it: the target was read and analysed here, and the result sent.
    Analysed,
}

/// What [`crate::upload_tree()`] or [`crate::sbom::upload_sbom()`] did: the key the
/// server holds the target's result under, and where that result came from. No artifact
/// entry is written for these targets (as the reference's client writes none for them):
/// the key is the artifact ID a `Scan` names, and a server answers without the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedTarget {
    /// The blob ID of the result, also the artifact ID of the scan.
    pub key: BlobId,
    /// What was scanned: a directory, a CycloneDX or an SPDX document.
    pub artifact_type: ArtifactType,
    /// Whether the server had the result, or where it came from.
    pub source: TargetSource,
}
