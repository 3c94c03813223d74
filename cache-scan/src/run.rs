//! Reading planned layers: several at once from a tar file or a directory, in one pass
//! from an archive compressed as a whole. Verified results are stored in batches
//! ([`Pending`]): one `put_blobs`, so one write transaction, for up to [`FLUSH_AT`]
//! layers, which makes an image of many small layers cost a few commits instead of one
//! per layer.

use std::{
    collections::HashMap,
    ops::ControlFlow,
    sync::{Arc, atomic::Ordering},
};

use cache_core::{BlobId, BlobInfo, Cache};
use tokio::task::JoinSet;

use crate::{
    Progress,
    archive::Archive,
    error::{Result, ScanError},
    layer::{Shared, read_layer},
    plan::Planned,
};

/// Most verified results waiting to be stored together.
const FLUSH_AT: usize = 256;
/// Uncompressed layer bytes whose results may wait to be stored together: past this much
/// work the batch is stored even if small, so a failure or crash loses little.
const FLUSH_AFTER_BYTES: u64 = 256 << 20;
/// Encoded document bytes one batch may hold: a batch is encoded at once, so this bounds
/// the memory a commit costs (one document over it makes a batch of its own).
const FLUSH_AFTER_DOCUMENT_BYTES: u64 = 16 << 20;

/// Verified results not stored yet, and what they cost to produce and to store.
#[derive(Default)]
struct Pending {
    results: Vec<(BlobId, BlobInfo)>,
    bytes: u64,
    document_bytes: u64,
}

impl Pending {
    fn push(&mut self, id: BlobId, blob: BlobInfo) {
        self.bytes += u64::try_from(blob.size).unwrap_or(0);
        self.document_bytes += cache_core::codec::encoded_len(&blob);
        self.results.push((id, blob));
    }

    fn is_due(&self) -> bool {
        self.results.len() >= FLUSH_AT
            || self.bytes >= FLUSH_AFTER_BYTES
            || self.document_bytes >= FLUSH_AFTER_DOCUMENT_BYTES
    }
}

/// Runs `f` on Tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ScanError::Internal(format!("worker failed: {e}")))?
}

/// What the layer reads of one scan share.
pub(crate) struct Runner<'a> {
    pub(crate) archive: Arc<Archive>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cache: &'a dyn Cache,
    /// Layers read at once at most.
    pub(crate) parallelism: usize,
}

impl Runner<'_> {
    /// [`Runner::run`], telling `progress` how many layers and bytes it reads before,
    /// and that it is done after.
    pub(crate) async fn run_reported(
        &self,
        tasks: Vec<Planned>,
        progress: Option<&dyn Progress>,
    ) -> Result<HashMap<BlobId, BlobInfo>> {
        if let Some(p) = progress {
            let bytes = tasks
                .iter()
                .filter_map(|t| {
                    let layer = &t.task.layer;
                    layer.size.or_else(|| self.archive.size(&layer.name))
                })
                .sum();
            p.start(tasks.len(), bytes);
        }
        let analysed = self.run(tasks).await;
        if let Some(p) = progress {
            p.finish();
        }
        analysed
    }

    /// Reads `tasks`, storing each analysed layer's result as soon as it is verified.
    /// Returns the analysed results by key.
    pub(crate) async fn run(&self, tasks: Vec<Planned>) -> Result<HashMap<BlobId, BlobInfo>> {
        if tasks.is_empty() {
            Ok(HashMap::new())
        } else if self.archive.is_stream() {
            self.run_streamed(tasks).await
        } else {
            self.run_parallel(tasks).await
        }
    }

    /// A compressed-as-a-whole archive can only be read front to back: one pass reads
    /// every wanted layer as it goes by. Layers verified before a failure are stored, as
    /// on the other paths.
    async fn run_streamed(&self, tasks: Vec<Planned>) -> Result<HashMap<BlobId, BlobInfo>> {
        let (archive, shared) = (Arc::clone(&self.archive), Arc::clone(&self.shared));
        let (results, outcome) = blocking(move || {
            let mut results = Vec::new();
            let outcome = stream_pass(&archive, tasks, &shared, &mut results);
            Ok((results, outcome))
        })
        .await?;
        let mut out = HashMap::new();
        let mut pending = Pending::default();
        for (id, blob) in results {
            if let Some(blob) = blob {
                pending.push(id, blob);
                if pending.is_due() {
                    self.flush(&mut pending, &mut out).await?;
                }
            }
        }
        self.flush(&mut pending, &mut out).await?;
        outcome.map(|()| out)
    }

    /// Stores the pending results in one `put_blobs` and moves them to `out`.
    async fn flush(
        &self,
        pending: &mut Pending,
        out: &mut HashMap<BlobId, BlobInfo>,
    ) -> Result<()> {
        if pending.results.is_empty() {
            return Ok(());
        }
        let stored = self.cache.put_blobs(&pending.results).await;
        let results = std::mem::take(&mut pending.results);
        pending.bytes = 0;
        pending.document_bytes = 0;
        if let Err(e) = stored {
            return Err(refused(e, &results));
        }
        tracing::debug!(layers = results.len(), "stored layer results");
        for (id, blob) in results {
            tracing::debug!(blob = %id, diff_id = blob.diff_id, "stored layer result");
            out.insert(id, blob);
        }
        Ok(())
    }

    /// Reads layers on the blocking pool, at most `parallelism` at once, storing results
    /// in batches: when [`Pending::is_due`], when no other layer is being read, and
    /// before returning (after an error too, for the layers verified before it).
    async fn run_parallel(&self, tasks: Vec<Planned>) -> Result<HashMap<BlobId, BlobInfo>> {
        let mut out = HashMap::new();
        let mut pending = Pending::default();
        // If this future is dropped (the caller gave up), readers stop at their next buffer.
        let mut guard = CancelOnDrop {
            shared: &self.shared,
            armed: true,
        };
        let mut set: JoinSet<(BlobId, Result<Option<BlobInfo>>)> = JoinSet::new();
        let mut queue = tasks.into_iter();
        let result = loop {
            while set.len() < self.parallelism.max(1) {
                let Some(Planned { key, task }) = queue.next() else {
                    break;
                };
                let (archive, shared) = (Arc::clone(&self.archive), Arc::clone(&self.shared));
                set.spawn_blocking(move || {
                    let mut task = task;
                    let result =
                        archive
                            .open_entry(&task.layer.name, "layer")
                            .and_then(|(reader, size)| {
                                task.layer.size.get_or_insert(size);
                                read_layer(&task, reader, &shared)
                            });
                    (key, result)
                });
            }
            let Some(joined) = set.join_next().await else {
                break Ok(());
            };
            match joined {
                Ok((id, Ok(Some(blob)))) => pending.push(id, blob),
                Ok((_, Ok(None))) => {}
                Ok((_, Err(e))) => break Err(e),
                Err(e) => break Err(ScanError::Internal(format!("layer worker failed: {e}"))),
            }
            if (pending.is_due() || set.is_empty())
                && let Err(e) = self.flush(&mut pending, &mut out).await
            {
                break Err(e);
            }
        };
        // Results verified before a failure are stored too, as the layers are sound.
        let result = match (result, self.flush(&mut pending, &mut out).await) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(())) => Ok(()),
        };
        if result.is_err() {
            // Stop the other readers at their next buffer and wait for them, so no work
            // outlives the scan.
            self.shared.cancel.store(true, Ordering::Relaxed);
            while set.join_next().await.is_some() {}
        }
        guard.armed = false;
        result.map(|()| out)
    }
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
    tasks: Vec<Planned>,
    shared: &Shared,
    out: &mut Vec<(BlobId, Option<BlobInfo>)>,
) -> Result<()> {
    let mut pending: Vec<Option<Planned>> = tasks.into_iter().map(Some).collect();
    while pending.iter().any(Option::is_some) {
        // Each task's entry by ordinal, so a name that occurs twice means the entry the
        // index means.
        let mut by_entry: HashMap<u64, usize> = HashMap::new();
        for (i, t) in pending.iter().enumerate() {
            let Some(Planned { task, .. }) = t else {
                continue;
            };
            match archive.ordinal(&task.layer.name) {
                Some(ordinal) => {
                    by_entry.entry(ordinal).or_insert(i);
                }
                None => return Err(missing_layer(archive, &task.layer.name)),
            }
        }
        let mut failure = None;
        let mut left = by_entry.len();
        archive.stream_files(|ordinal, data| {
            let Some(i) = by_entry.remove(&ordinal) else {
                return Ok(ControlFlow::Continue(()));
            };
            let Some(Planned { key, task }) = pending.get_mut(i).and_then(Option::take) else {
                return Ok(ControlFlow::Continue(()));
            };
            match read_layer(&task, data, shared) {
                Ok(blob) => out.push((key, blob)),
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
            .map(|p| p.task.layer.name.clone())
        {
            return Err(missing_layer(archive, &name));
        }
    }
    Ok(())
}

/// A failed `put_blobs` as the scan reports it: a document the cache refused for its size
/// names the layer (its diffID) and the cap.
fn refused(e: cache_core::Error, results: &[(BlobId, BlobInfo)]) -> ScanError {
    if let cache_core::Error::DocumentTooLarge {
        id, size, limit, ..
    } = &e
    {
        let layer = results
            .iter()
            .find(|(key, _)| key.as_str() == id)
            .map_or_else(
                || format!("blob {id}"),
                |(_, blob)| format!("layer {}", blob.diff_id),
            );
        return ScanError::LimitExceeded {
            subject: layer,
            limit: crate::Limit::DocumentSize,
            cap: *limit,
            reached: *size,
        };
    }
    e.into()
}

fn missing_layer(archive: &Archive, name: &str) -> ScanError {
    ScanError::Missing {
        path: archive.path().into(),
        what: "layer",
        name: name.into(),
    }
}
