//! Group commit: the documents of concurrent `PutBlob` and `PutArtifact` requests are
//! written by one `put_values` call (one transaction on fs, one pipeline on Redis), and
//! each request is answered once the write that holds its document is done.
//!
//! A request's document is encoded in its own handler; it then waits for a writer. Each
//! of [`WRITERS`] writer tasks takes the documents queued when it is free (at most
//! [`MAX_ENTRIES`] or about [`MAX_BYTES`]) and stores them together, so under load a
//! commit carries many documents and a lone request is written at once. On LMDB, where
//! every commit is a sync to disk, this is what keeps 16 concurrent uploads from queueing
//! for 16 commits (BENCHMARKS.md). Only backends that say so (`Cache::groups_writes`:
//! LMDB, a remote server) are written through it; the others (Redis, which pipelines
//! concurrent commands on its connection by itself, and memory) are written by each
//! request's handler at once, without the hop to a writer task.

use std::sync::{Arc, OnceLock};

use cache_core::{Cache, EntryKey};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::twirp::{Code, TwirpError};

/// Writer tasks, so one batch can be encoded and sent while another commits.
pub const WRITERS: usize = 2;

/// Most documents in one write.
pub const MAX_ENTRIES: usize = 256;

/// About the most bytes in one write (a larger single document is written alone).
pub const MAX_BYTES: usize = 8 << 20;

/// One document waiting to be written, and where its outcome goes.
struct Job {
    key: EntryKey,
    value: Vec<u8>,
    done: oneshot::Sender<Result<(), TwirpError>>,
}

/// The queue in front of the writers, started on first use (it needs a runtime).
#[derive(Debug, Default)]
pub struct Batcher {
    queue: OnceLock<mpsc::UnboundedSender<Job>>,
}

impl Batcher {
    /// Stores several values, each with the cache's TTL, queued together so that they
    /// are written in as few writes as the limits allow (usually one); returns once all
    /// are written, with the first error of any of their writes.
    pub async fn put_many(
        &self,
        cache: &Arc<dyn Cache>,
        values: Vec<(EntryKey, Vec<u8>)>,
    ) -> Result<(), WriteError> {
        let queue = self.queue.get_or_init(|| start(cache.clone()));
        let mut outcomes = Vec::with_capacity(values.len());
        for (key, value) in values {
            let (done, outcome) = oneshot::channel();
            queue
                .send(Job { key, value, done })
                .map_err(|_| WriteError::Stopped)?;
            outcomes.push(outcome);
        }
        let mut first_error = None;
        for outcome in outcomes {
            let error = match outcome.await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => WriteError::Backend(e),
                Err(_) => WriteError::Stopped,
            };
            first_error.get_or_insert(error);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Why a batched write failed.
#[derive(Debug)]
pub enum WriteError {
    /// The backend failed the write; the Twirp error to answer with.
    Backend(TwirpError),
    /// The writers are gone (the server is stopping).
    Stopped,
}

fn start(cache: Arc<dyn Cache>) -> mpsc::UnboundedSender<Job> {
    let (tx, rx) = mpsc::unbounded_channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..WRITERS {
        let (rx, cache) = (rx.clone(), cache.clone());
        tokio::spawn(async move {
            while let Some(batch) = next_batch(&rx).await {
                write(&*cache, batch).await;
            }
        });
    }
    tx
}

/// The documents waiting now: at least one (waiting for it), then whatever else is
/// queued, up to the limits. `None` once every sender is gone.
async fn next_batch(rx: &Mutex<mpsc::UnboundedReceiver<Job>>) -> Option<Vec<Job>> {
    let mut rx = rx.lock().await;
    let first = rx.recv().await?;
    let mut bytes = first.value.len();
    let mut batch = vec![first];
    while batch.len() < MAX_ENTRIES && bytes < MAX_BYTES {
        match rx.try_recv() {
            Ok(job) => {
                bytes += job.value.len();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

async fn write(cache: &dyn Cache, batch: Vec<Job>) {
    let mut entries = Vec::with_capacity(batch.len());
    let mut waiting = Vec::with_capacity(batch.len());
    for job in batch {
        entries.push((job.key, job.value));
        waiting.push(job.done);
    }
    let outcome = cache.put_values(entries).await.map_err(|e| {
        let code = if e.is_unavailable() {
            Code::Unavailable
        } else {
            Code::Internal
        };
        TwirpError::new(code, e.to_string())
    });
    for done in waiting {
        // A request whose client went away no longer listens.
        let _ = done.send(outcome.clone());
    }
}
