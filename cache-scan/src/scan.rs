//! [`scan()`]: the flow from archive to report through the cache.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
    time::Instant,
};

use cache_core::{ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, calc_key};

use crate::{
    ScanOptions,
    analyser::ANALYSERS,
    apply::{LayerView, apply},
    archive::Archive,
    error::{Result, ScanError},
    flight::Held,
    image::{Image, read_image},
    layer::Shared,
    limits::{LayerLimits, Limit},
    plan::Planner,
    report::{LayerCounts, LayerSource, Report},
    run::{Runner, blocking},
};

/// The cache keys of an image's layers and of the image itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageKeys {
    /// The image's artifact key.
    pub artifact: ArtifactId,
    /// Each layer's blob key, bottom first.
    pub blobs: Vec<BlobId>,
}

/// The options that change analysis results, as `calc_key` takes them.
fn key_options(options: &ScanOptions) -> [(&'static str, String); 1] {
    [("db-size-cap", options.max_db_size.to_string())]
}

/// The blob key of a layer with this diffID (or the artifact key of an image with this
/// ID) under `options`: [`calc_key`] of the ID, every analyser's name and version, and
/// the options that change results (how keys are made: `docs/keys.md`).
pub fn cache_key(id: &str, options: &ScanOptions) -> Result<cache_core::Digest> {
    let opts = key_options(options);
    Ok(calc_key(
        id,
        ANALYSERS.iter().copied(),
        opts.iter().map(|(k, v)| (*k, v.as_str())),
    )?)
}

/// Scans the image archive at `input` through `cache`.
///
/// `input` is a docker-save tar (classic or Docker ≥ 25; plain, gzip- or
/// zstd-compressed), an OCI image layout tar, or an image layout directory. The flow
/// (described in `docs/scanning.md`): read the manifest and config (image ID = SHA-256
/// of the config), compute keys, ask the cache once which layers are missing, analyse
/// only those (in parallel, each verified while streaming), `put_blob` each, read every
/// layer's result back (analysing again any that vanished meanwhile), `put_artifact`
/// once all are in hand, and apply the layers in order.
///
/// When everything is cached, no layer is read at all: the cost is the manifest, the
/// config and the cache lookups, whatever the image's size (a compressed-as-a-whole
/// archive must still be decompressed once to find its manifest).
///
/// Must be called within a Tokio runtime: layer reads run on its blocking pool. On any
/// error no artifact entry is written; layers analysed before it may stay cached.
#[tracing::instrument(skip_all, fields(input = %input.display()))]
pub async fn scan(input: &Path, cache: &dyn Cache, options: &ScanOptions) -> Result<Report> {
    let started = Instant::now();
    let (archive, image) = open(input, options).await?;
    check_layers(&image, options)?;
    let keys = image_keys(&image, options)?;
    let missing = cache.missing_blobs(&keys.artifact, &keys.blobs).await?;

    let mut planner = Planner::new(&image.layers, &keys.blobs);
    let (tasks, mut counts) = planner.plan(&missing.blobs, options.verify_layers);
    let held = Held::new(cache, options.claims);
    let runner = Runner {
        archive: Arc::new(archive),
        shared: Arc::new(shared(input, options, cache)),
        cache,
        parallelism: options.effective_parallelism(),
        held: &held,
    };
    let work = async {
        let split = held.claim(&keys.artifact, tasks).await?;
        let (analysed, waited) = tokio::join!(
            runner.run_reported(split.now, options.progress.as_deref()),
            held.wait(split.waiting)
        );
        let (mut analysed, waited) = (analysed?, waited?);
        analysed.extend(runner.run(waited.analyse).await?);
        let read = read_back(&mut planner, &runner, analysed, &mut counts).await?;
        let mut stored = waited.stored;
        stored.extend(split.stored);
        Ok::<_, ScanError>((read, stored))
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        () = held.renew_forever() => unreachable!("renewing never ends"),
    };
    // Stored results released their claims already; after an error the others go at
    // once, so a waiting scan takes over without waiting for the lease.
    held.release_all().await;
    let ((blobs, analysed_keys), waited_keys) = outcome?;
    let sources = layer_sources(planner.keys(), &analysed_keys, &waited_keys);
    counts.set_sources(&sources);
    counts.counters = runner.shared.counters();
    for ((layer, key), source) in image.layers.iter().zip(&keys.blobs).zip(&sources) {
        tracing::debug!(diff_id = %layer.diff_id, blob = %key, source = source.name(), "layer result");
    }

    // Only now, with every layer's result in hand: on any error above no artifact entry
    // is written.
    if missing.artifact {
        cache
            .put_artifact(&keys.artifact, &artifact_info(&image))
            .await?;
    }
    let report = assemble(input, &image, &blobs, counts, sources);
    tracing::info!(
        image_id = %report.image_id,
        layers = counts.total,
        analysed = counts.analysed,
        cached = counts.cached,
        waited = counts.waited,
        verified = counts.verified,
        packages = report.packages.len(),
        lang_packages = report
            .applications
            .iter()
            .map(|a| a.packages.len())
            .sum::<usize>(),
        duplicates_collapsed = counts.counters.duplicates_collapsed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scanned image"
    );
    Ok(report)
}

/// Opens the archive and reads the image `options` picks.
pub(crate) async fn open(input: &Path, options: &ScanOptions) -> Result<(Archive, Image)> {
    let path = input.to_path_buf();
    let reference = options.image.clone();
    let limit = options.max_layer_size;
    blocking(move || {
        let archive = Archive::open(&path, limit)?;
        let image = read_image(&archive, reference.as_deref())?;
        Ok((archive, image))
    })
    .await
}

/// Every layer's result, bottom first: those this scan analysed as it has them, the
/// others read back from the cache in one `get_blobs` (a result is never held twice). A
/// result that vanished since `missing_blobs` (expired or evicted by a size bound) is
/// analysed again rather than failing the scan.
async fn read_back(
    planner: &mut Planner<'_>,
    runner: &Runner<'_>,
    mut analysed: HashMap<BlobId, BlobInfo>,
    counts: &mut LayerCounts,
) -> Result<(Vec<BlobInfo>, HashSet<BlobId>)> {
    let keys = planner.keys();
    let mut wanted: Vec<BlobId> = keys
        .iter()
        .filter(|id| !analysed.contains_key(*id))
        .cloned()
        .collect();
    wanted.sort();
    wanted.dedup();
    let found = runner.cache.get_blobs(&wanted).await?;
    let mut stored: HashMap<BlobId, BlobInfo> = wanted
        .into_iter()
        .zip(found)
        .filter_map(|(id, blob)| blob.map(|b| (id, b)))
        .collect();
    let present: Vec<bool> = keys
        .iter()
        .map(|id| stored.contains_key(id) || analysed.contains_key(id))
        .collect();
    let lost = planner.recover(&present, &analysed, counts);
    analysed.extend(runner.run(lost).await?);
    let analysed_keys: HashSet<BlobId> = analysed.keys().cloned().collect();
    // Each result is moved out at its last position and cloned only for a layer that
    // repeats an earlier one's key.
    let mut last: HashMap<&BlobId, usize> = HashMap::new();
    for (i, id) in keys.iter().enumerate() {
        last.insert(id, i);
    }
    let blobs = keys
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let take = last.get(id) == Some(&i);
            let source = if stored.contains_key(id) {
                &mut stored
            } else {
                &mut analysed
            };
            let blob = if take {
                source.remove(id)
            } else {
                source.get(id).cloned()
            };
            blob.ok_or_else(|| ScanError::Internal(format!("no result for blob {id}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((blobs, analysed_keys))
}

/// Where each layer's result came from: analysed by this scan, stored by another scan
/// this one waited for, or found in the cache.
fn layer_sources(
    keys: &[BlobId],
    analysed: &HashSet<BlobId>,
    waited: &HashSet<BlobId>,
) -> Vec<LayerSource> {
    keys.iter()
        .map(|k| {
            if analysed.contains(k) {
                LayerSource::Analysed
            } else if waited.contains(k) {
                LayerSource::Waited
            } else {
                LayerSource::Cached
            }
        })
        .collect()
}

/// The report: the layers' results applied in order.
fn assemble(
    input: &Path,
    image: &Image,
    blobs: &[BlobInfo],
    counts: LayerCounts,
    sources: Vec<LayerSource>,
) -> Report {
    let views: Vec<LayerView<'_>> = image
        .layers
        .iter()
        .zip(blobs)
        .map(|(layer, blob)| LayerView {
            diff_id: layer.diff_id.as_str(),
            digest: layer.blob_digest.as_ref().map(|d| d.as_str()),
            blob,
        })
        .collect();
    let applied = apply(&views);
    Report {
        artifact_name: input.display().to_string(),
        artifact_type: crate::ArtifactType::ContainerImage,
        image_id: image.image_id.to_string(),
        repo_tags: image.repo_tags.clone(),
        diff_ids: image.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        architecture: image.architecture.clone(),
        os: applied.reported_os(),
        repository: applied.repository,
        packages: applied.packages,
        applications: applied.applications,
        layers: counts,
        layer_sources: sources,
    }
}

/// The cache keys `scan` uses for the image at `input` (reads only its manifest and
/// config). For tools that inspect or prune the cache entries of an image.
pub async fn image_keys_of(input: &Path, options: &ScanOptions) -> Result<ImageKeys> {
    let (_, image) = open(input, options).await?;
    image_keys(&image, options)
}

pub(crate) fn image_keys(image: &Image, options: &ScanOptions) -> Result<ImageKeys> {
    let blobs = image
        .layers
        .iter()
        .map(|l| cache_key(l.diff_id.as_str(), options).map(BlobId::from))
        .collect::<Result<Vec<_>>>()?;
    let artifact = ArtifactId::from(cache_key(image.image_id.as_str(), options)?);
    Ok(ImageKeys { artifact, blobs })
}

pub(crate) fn artifact_info(image: &Image) -> ArtifactInfo {
    ArtifactInfo {
        schema_version: ArtifactInfo::SCHEMA_VERSION,
        architecture: image.architecture.clone(),
        created: image.created.clone(),
        docker_version: image.docker_version.clone(),
        os: image.os.clone(),
        ..ArtifactInfo::default()
    }
}

/// Fails an image with more layers than [`ScanOptions::max_layers`].
pub(crate) fn check_layers(image: &Image, options: &ScanOptions) -> Result<()> {
    if image.layers.len() > options.max_layers {
        tracing::debug!(
            limit = Limit::Layers.name(),
            layers = image.layers.len(),
            "image crossed a cap"
        );
        return Err(ScanError::LimitExceeded {
            subject: format!("image {}", image.image_id),
            limit: Limit::Layers,
            cap: options.max_layers as u64,
            reached: image.layers.len() as u64,
        });
    }
    Ok(())
}

/// What the layer reads of one scan of `input` into `cache` share.
pub(crate) fn shared(input: &Path, options: &ScanOptions, cache: &dyn Cache) -> Shared {
    Shared {
        input: input.to_path_buf(),
        max_db_size: options.max_db_size,
        max_layer_size: options.max_layer_size,
        limits: LayerLimits {
            max_packages: options.max_packages_per_layer,
            max_document: cache.options().max_document_size,
        },
        progress: options.progress.clone(),
        cancel: Default::default(),
        collapsed: Default::default(),
        skipped: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of `docs/keys.md` ("What feeds the keys of a scan"): the blob ID of a
    /// layer under today's analysers and the default options. It changes whenever an
    /// analyser version does; update the document with it.
    #[test]
    fn documented_blob_key() {
        let d = "sha256:5317f9c3b2a5b5a6a3d1e8f0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0";
        assert_eq!(
            cache_key(d, &ScanOptions::default()).unwrap().as_str(),
            "sha256:ec950e272771dc484dcb9477356724d53a79b8602f6529c0e69947477cb7e1b7"
        );
    }
}
