//! [`scan`]: the flow from archive to report through the cache.

use std::{
    collections::{HashMap, HashSet},
    ops::ControlFlow,
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use cache_core::{ArtifactId, ArtifactInfo, BlobId, BlobInfo, Cache, calc_key};
use tokio::task::JoinSet;

use crate::{
    LayerWork, ScanOptions,
    analyser::ANALYSERS,
    apply::{LayerView, apply},
    archive::Archive,
    error::{Result, ScanError},
    image::{Image, read_image},
    layer::{LayerTask, Shared, read_layer},
    report::{LayerCounts, Report},
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
/// ID) under `options`.
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
/// zstd-compressed), an OCI image layout tar, or an image layout directory. The flow:
/// read the manifest and config (image ID = SHA-256 of the config), compute keys, ask
/// the cache once which layers are missing, analyse only those (in parallel, each
/// verified while streaming), `put_blob` each, read every layer's result back (analysing
/// again any that vanished meanwhile), `put_artifact` once all are in hand, and apply the
/// layers in order.
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
    let path = input.to_path_buf();
    let reference = options.image.clone();
    let limit = options.max_layer_size;
    let (archive, image) = blocking(move || {
        let archive = Archive::open(&path, limit)?;
        let image = read_image(&archive, reference.as_deref())?;
        Ok((archive, image))
    })
    .await?;
    let keys = image_keys(&image, options)?;
    let missing = cache.missing_blobs(&keys.artifact, &keys.blobs).await?;
    let missing_set: HashSet<&BlobId> = missing.blobs.iter().collect();

    let mut counts = LayerCounts {
        total: image.layers.len(),
        ..LayerCounts::default()
    };
    let mut tasks: Vec<(BlobId, LayerTask)> = Vec::new();
    // One analysis per key; every other distinct stored blob with the same diffID (an
    // OCI image may store one layer twice, compressed differently) is still verified,
    // so no content the scan accepts goes unhashed.
    let mut planned: HashSet<&BlobId> = HashSet::new();
    let mut read: HashSet<(&BlobId, &str)> = HashSet::new();
    for (layer, id) in image.layers.iter().zip(&keys.blobs) {
        let hit = !missing_set.contains(id);
        tracing::debug!(diff_id = %layer.diff_id, blob = %id, hit, "layer cache lookup");
        if hit {
            counts.cached += 1;
        } else {
            counts.analysed += 1;
        }
        let work = match (hit, options.verify_layers) {
            (false, _) => LayerWork::Analyse,
            (true, true) => LayerWork::Verify,
            (true, false) => continue,
        };
        if !read.insert((id, layer.name.as_str())) {
            continue;
        }
        let work = if planned.insert(id) {
            work
        } else {
            LayerWork::Verify
        };
        if hit {
            counts.verified += 1;
        }
        tasks.push((
            id.clone(),
            LayerTask {
                layer: layer.clone(),
                work,
            },
        ));
    }

    let archive = Arc::new(archive);
    let shared = Arc::new(Shared {
        input: input.to_path_buf(),
        max_db_size: options.max_db_size,
        max_layer_size: options.max_layer_size,
        progress: options.progress.clone(),
        cancel: Default::default(),
    });
    if let Some(p) = &options.progress {
        let bytes = tasks
            .iter()
            .filter_map(|(_, t)| t.layer.size.or_else(|| archive.size(&t.layer.name)))
            .sum();
        p.start(tasks.len(), bytes);
    }
    let analysed = run_tasks(
        &archive,
        tasks,
        cache,
        &shared,
        options.effective_parallelism(),
    )
    .await;
    if let Some(p) = &options.progress {
        p.finish();
    }
    let mut analysed = analysed?;

    // Read every layer's result back; a result that vanished in between (expired or
    // evicted by a size bound) is analysed again rather than failing the scan.
    let stored = cache.get_blobs(&keys.blobs).await?;
    let mut lost: Vec<(BlobId, LayerTask)> = Vec::new();
    for ((layer, id), blob) in image.layers.iter().zip(&keys.blobs).zip(&stored) {
        if blob.is_some() || analysed.contains_key(id) {
            continue;
        }
        // As above: analysed once, every other distinct stored blob verified (unless
        // verify_layers already did).
        let work = if !lost.iter().any(|(l, _)| l == id) {
            tracing::warn!(diff_id = %layer.diff_id, blob = %id, "cached layer result vanished during the scan; analysing the layer again");
            LayerWork::Analyse
        } else if options.verify_layers
            || lost
                .iter()
                .any(|(l, t)| l == id && t.layer.name == layer.name)
        {
            continue;
        } else {
            LayerWork::Verify
        };
        lost.push((
            id.clone(),
            LayerTask {
                layer: layer.clone(),
                work,
            },
        ));
    }
    if !lost.is_empty() {
        for id in &keys.blobs {
            if lost.iter().any(|(l, _)| l == id) {
                counts.cached -= 1;
                counts.analysed += 1;
            }
        }
        analysed.extend(
            run_tasks(
                &archive,
                lost,
                cache,
                &shared,
                options.effective_parallelism(),
            )
            .await?,
        );
    }
    let mut blobs: Vec<BlobInfo> = Vec::with_capacity(stored.len());
    for (blob, id) in stored.into_iter().zip(&keys.blobs) {
        match blob.or_else(|| analysed.get(id).cloned()) {
            Some(blob) => blobs.push(blob),
            None => {
                return Err(ScanError::Internal(format!("no result for blob {id}")));
            }
        }
    }
    // Only now, with every layer's result in hand: on any error above no artifact entry
    // is written.
    if missing.artifact {
        cache
            .put_artifact(&keys.artifact, &artifact_info(&image))
            .await?;
    }
    let views: Vec<LayerView<'_>> = image
        .layers
        .iter()
        .zip(&blobs)
        .map(|(layer, blob)| LayerView {
            diff_id: layer.diff_id.as_str(),
            digest: layer.blob_digest.as_ref().map(|d| d.as_str()),
            blob,
        })
        .collect();
    let applied = apply(&views);
    let report = Report {
        artifact_name: input.display().to_string(),
        image_id: image.image_id.to_string(),
        repo_tags: image.repo_tags.clone(),
        diff_ids: image.layers.iter().map(|l| l.diff_id.to_string()).collect(),
        architecture: image.architecture.clone(),
        os: applied.os,
        repository: applied.repository,
        packages: applied.packages,
        layers: counts,
    };
    tracing::info!(
        image_id = %report.image_id,
        layers = counts.total,
        analysed = counts.analysed,
        cached = counts.cached,
        verified = counts.verified,
        packages = report.packages.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "scanned image"
    );
    Ok(report)
}

/// The cache keys `scan` uses for the image at `input` (reads only its manifest and
/// config). For tools that inspect or prune the cache entries of an image.
pub async fn image_keys_of(input: &Path, options: &ScanOptions) -> Result<ImageKeys> {
    let path = input.to_path_buf();
    let reference = options.image.clone();
    let limit = options.max_layer_size;
    let image = blocking(move || {
        let archive = Archive::open(&path, limit)?;
        read_image(&archive, reference.as_deref())
    })
    .await?;
    image_keys(&image, options)
}

fn image_keys(image: &Image, options: &ScanOptions) -> Result<ImageKeys> {
    let blobs = image
        .layers
        .iter()
        .map(|l| cache_key(l.diff_id.as_str(), options).map(BlobId::from))
        .collect::<Result<Vec<_>>>()?;
    let artifact = ArtifactId::from(cache_key(image.image_id.as_str(), options)?);
    Ok(ImageKeys { artifact, blobs })
}

fn artifact_info(image: &Image) -> ArtifactInfo {
    ArtifactInfo {
        schema_version: ArtifactInfo::SCHEMA_VERSION,
        architecture: image.architecture.clone(),
        created: image.created.clone(),
        docker_version: image.docker_version.clone(),
        os: image.os.clone(),
        ..ArtifactInfo::default()
    }
}

async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ScanError::Internal(format!("worker failed: {e}")))?
}

/// Reads `tasks`, at most `parallelism` at once, storing each analysed layer's result as
/// soon as it is verified. Returns the analysed results by key.
async fn run_tasks(
    archive: &Arc<Archive>,
    tasks: Vec<(BlobId, LayerTask)>,
    cache: &dyn Cache,
    shared: &Arc<Shared>,
    parallelism: usize,
) -> Result<HashMap<BlobId, BlobInfo>> {
    let mut out = HashMap::new();
    if tasks.is_empty() {
        return Ok(out);
    }
    if archive.is_stream() {
        // A compressed-as-a-whole archive can only be read front to back: one pass reads
        // every wanted layer as it goes by.
        // Layers verified before a failure are stored, as on the other paths.
        let (archive, shared) = (Arc::clone(archive), Arc::clone(shared));
        let (results, outcome) = blocking(move || {
            let mut results = Vec::new();
            let outcome = stream_pass(&archive, tasks, &shared, &mut results);
            Ok((results, outcome))
        })
        .await?;
        for (id, blob) in results {
            if let Some(blob) = blob {
                cache.put_blob(&id, &blob).await?;
                tracing::debug!(blob = %id, diff_id = blob.diff_id, "stored layer result");
                out.insert(id, blob);
            }
        }
        return outcome.map(|()| out);
    }

    // If this future is dropped (the caller gave up), readers stop at their next buffer.
    let mut guard = CancelOnDrop {
        shared,
        armed: true,
    };
    let mut set: JoinSet<(BlobId, Result<Option<BlobInfo>>)> = JoinSet::new();
    let mut queue = tasks.into_iter();
    let result = loop {
        while set.len() < parallelism.max(1) {
            let Some((id, task)) = queue.next() else {
                break;
            };
            let (archive, shared) = (Arc::clone(archive), Arc::clone(shared));
            set.spawn_blocking(move || {
                let result = archive
                    .open_entry(&task.layer.name, "layer")
                    .and_then(|(reader, _)| read_layer(&task, reader, &shared));
                (id, result)
            });
        }
        let Some(joined) = set.join_next().await else {
            break Ok(());
        };
        match joined {
            Ok((id, Ok(Some(blob)))) => {
                if let Err(e) = cache.put_blob(&id, &blob).await {
                    break Err(e.into());
                }
                tracing::debug!(blob = %id, diff_id = blob.diff_id, "stored layer result");
                out.insert(id, blob);
            }
            Ok((_, Ok(None))) => {}
            Ok((_, Err(e))) => break Err(e),
            Err(e) => break Err(ScanError::Internal(format!("layer worker failed: {e}"))),
        }
    };
    if result.is_err() {
        // Stop the other readers at their next buffer and wait for them, so no work
        // outlives the scan.
        shared.cancel.store(true, Ordering::Relaxed);
        while set.join_next().await.is_some() {}
    }
    guard.armed = false;
    result.map(|()| out)
}

/// Sets the cancel flag when dropped while armed: when the scan future is dropped in
/// the middle of reading layers.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Reads the tasks' layers from a streamed archive, in as few passes as possible (one,
/// unless two tasks name the same archive entry), into `out` (which keeps what was read
/// before an error).
fn stream_pass(
    archive: &Archive,
    tasks: Vec<(BlobId, LayerTask)>,
    shared: &Shared,
    out: &mut Vec<(BlobId, Option<BlobInfo>)>,
) -> Result<()> {
    let mut pending: Vec<Option<(BlobId, LayerTask)>> = tasks.into_iter().map(Some).collect();
    while pending.iter().any(Option::is_some) {
        // Each task's entry by ordinal, so a name that occurs twice means the entry the
        // index means.
        let mut by_entry: HashMap<u64, usize> = HashMap::new();
        for (i, t) in pending.iter().enumerate() {
            let Some((_, task)) = t else {
                continue;
            };
            match archive.ordinal(&task.layer.name) {
                Some(ordinal) => {
                    by_entry.entry(ordinal).or_insert(i);
                }
                None => {
                    return Err(ScanError::Missing {
                        path: archive.path().into(),
                        what: "layer",
                        name: task.layer.name.clone(),
                    });
                }
            }
        }
        let mut failure = None;
        let mut left = by_entry.len();
        archive.stream_files(|ordinal, data| {
            let Some(i) = by_entry.remove(&ordinal) else {
                return Ok(ControlFlow::Continue(()));
            };
            let Some((id, task)) = pending.get_mut(i).and_then(Option::take) else {
                return Ok(ControlFlow::Continue(()));
            };
            match read_layer(&task, data, shared) {
                Ok(blob) => out.push((id, blob)),
                Err(e) => {
                    failure = Some(e);
                    return Ok(ControlFlow::Break(()));
                }
            }
            left -= 1;
            Ok(if left == 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(name) = by_entry
            .into_values()
            .find_map(|i| pending.get(i).and_then(Option::as_ref))
            .map(|(_, task)| task.layer.name.clone())
        {
            return Err(ScanError::Missing {
                path: archive.path().into(),
                what: "layer",
                name,
            });
        }
    }
    Ok(())
}
