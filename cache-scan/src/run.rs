//! Reading planned layers: several at once from a tar file or a directory, in one pass
//! from an archive compressed as a whole; each analysis is stored with `put_blob` as soon
//! as it is verified.

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
        for (id, blob) in results {
            if let Some(blob) = blob {
                self.cache.put_blob(&id, &blob).await?;
                tracing::debug!(blob = %id, diff_id = blob.diff_id, "stored layer result");
                out.insert(id, blob);
            }
        }
        outcome.map(|()| out)
    }

    /// Reads layers on the blocking pool, at most `parallelism` at once.
    async fn run_parallel(&self, tasks: Vec<Planned>) -> Result<HashMap<BlobId, BlobInfo>> {
        let mut out = HashMap::new();
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
                    let result = archive
                        .open_entry(&task.layer.name, "layer")
                        .and_then(|(reader, _)| read_layer(&task, reader, &shared));
                    (key, result)
                });
            }
            let Some(joined) = set.join_next().await else {
                break Ok(());
            };
            match joined {
                Ok((id, Ok(Some(blob)))) => {
                    if let Err(e) = self.cache.put_blob(&id, &blob).await {
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

fn missing_layer(archive: &Archive, name: &str) -> ScanError {
    ScanError::Missing {
        path: archive.path().into(),
        what: "layer",
        name: name.into(),
    }
}
