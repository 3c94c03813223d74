//! Claims of the single-flight ([`cache_core::claim`]) as lock files under
//! `fanal/claims-v1/`, one per claimed blob key, visible to every process on the machine.
//!
//! | what | where |
//! |---|---|
//! | a claim on `sha256:<hex>` | `claims-v1/sha256-<hex>.lock`, `flock`ed exclusively by its owner |
//! | its lease | the file's text: `<expiry, unix ms> <token>\n`, rewritten by each renewal |
//! | the guard | `claims-v1/guard.lock`, `flock`ed exclusively while a lock file is created or removed |
//!
//! A claim is live while its owner holds the `flock` and its expiry has not passed. The
//! kernel drops the `flock` when the owner dies (SIGKILL included), so a dead owner's
//! claim ends at once; a live owner that stopped renewing (hung) loses it when the expiry
//! passes: the next claimer removes the lock file (the hung owner keeps a lock on a file
//! nobody can find any more) and creates a new one.
//!
//! Creating and removing lock files happens under the guard, so the file a claimer
//! locked is the one at the path and two callers never own one key. The guard is waited
//! for at most [`GUARD_WAIT`]: a process stopped or hung while holding it would otherwise
//! keep every other scan from claiming; past the wait a claimer analyses without claims.
//! A release only unlocks: the file stays for the next claim of the key (creating and
//! removing one per claim was the cost of claiming on ext4); `gc` and `clear` remove
//! those nobody holds.
//!
//! Waiters block in `flock` on the owner's file in a thread of their own, so they wake up
//! the moment the owner releases or dies, with no polling; they also wake when the
//! recorded expiry passes.
//!
//! A process that holds claims for others — `scancache server`, for its remote clients —
//! outlives an owner that went away without releasing: each claim of this process whose
//! lease ran out unrenewed has its file closed at the next claim, so neither its
//! descriptor nor a waiter's thread blocked on it is kept for ever.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{self, Read as _, Seek as _, Write as _},
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use cache_core::{BlobId, Claim, Claimed, Error, Result};

/// The directory of claim files under `fanal/`; the `-v1` is its layout version.
pub(crate) const CLAIMS_DIR: &str = "claims-v1";
/// The guard file's name inside [`CLAIMS_DIR`].
const GUARD: &str = "guard.lock";
/// How long a claimer waits for the guard. One claim call holds it for a few file
/// operations (well under a millisecond); a holder that keeps it this long is stopped or
/// hung, and the claimer goes on without it rather than wait as long as that lasts.
const GUARD_WAIT: Duration = Duration::from_secs(2);

/// This process's claims on one cache directory: the lock files it holds, by token.
#[derive(Debug)]
pub(crate) struct Claims {
    dir: PathBuf,
    held: Mutex<HashMap<String, Held>>,
    counter: AtomicU64,
    /// How long to wait for the guard ([`GUARD_WAIT`]; shorter in tests).
    guard_wait: Duration,
    /// Whether the last wait for the guard ran out (warned once until it is free again).
    guard_stuck: AtomicBool,
}

/// A lock file this process holds, and when its lease runs out.
#[derive(Debug)]
struct Held {
    file: File,
    expires: Instant,
}

impl Claims {
    /// The claims under `fanal` (the directory is created when first needed).
    pub(crate) fn new(fanal: &Path) -> Claims {
        Claims {
            dir: fanal.join(CLAIMS_DIR),
            held: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            guard_wait: GUARD_WAIT,
            guard_stuck: AtomicBool::new(false),
        }
    }

    /// The lock file of `id`.
    pub(crate) fn path(&self, id: &BlobId) -> PathBuf {
        self.dir
            .join(format!("{}.lock", id.as_str().replace(':', "-")))
    }

    /// Claims every key of `ids` for `lease`, under one hold of the guard. When another
    /// process keeps the guard past [`GUARD_WAIT`], every key is granted with a claim that
    /// holds nothing ([`Claim::unheld`]): the caller analyses the layers itself, as on a
    /// backend without claims, instead of waiting for as long as that process is stopped.
    pub(crate) fn claim(&self, ids: &[BlobId], lease: Duration) -> Result<Vec<Claimed>> {
        self.close_run_out();
        let Some(guard) = self.guard()? else {
            return Ok(ids
                .iter()
                .map(|id| Claimed::Owned(Claim::unheld(id.clone())))
                .collect());
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.claim_one(id, lease, &guard)?);
        }
        Ok(out)
    }

    fn claim_one(&self, id: &BlobId, lease: Duration, _guard: &Guard) -> Result<Claimed> {
        let path = self.path(id);
        let fail = |e| Error::io("cannot claim a layer in", &path, e);
        // Two rounds at most: the second after removing an expired claim's file.
        for _ in 0..2 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(fail)?;
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => {
                    // Under the guard nobody removes or creates the file, so the file we
                    // locked is the one at the path.
                    let token = self.token();
                    write_lease(&file, lease, &token).map_err(fail)?;
                    let expires = Instant::now() + lease;
                    self.held_map()
                        .insert(token.clone(), Held { file, expires });
                    return Ok(Claimed::Owned(Claim::new(id.clone(), token)));
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    if read_lease(&path).is_none_or(|expiry| expiry > SystemTime::now()) {
                        return Ok(Claimed::Busy);
                    }
                    // The owner is alive but let its lease run out: take the key over
                    // with a new file.
                    tracing::debug!(blob = %id, "claim lease ran out; taking it over");
                    remove(&path).map_err(fail)?;
                }
                Err(fs4::TryLockError::Error(e)) => return Err(fail(e)),
            }
        }
        Ok(Claimed::Busy)
    }

    /// Rewrites the expiry of each claim this process still holds.
    pub(crate) fn renew(&self, claims: &[Claim], lease: Duration) -> Result<()> {
        let mut held = self.held_map();
        for claim in claims {
            if let Some(h) = held.get_mut(claim.token()) {
                write_lease(&h.file, lease, claim.token())
                    .map_err(|e| Error::io("cannot renew a claim in", self.path(claim.id()), e))?;
                h.expires = Instant::now() + lease;
            }
        }
        Ok(())
    }

    /// Closes the files of this process's claims whose lease ran out without a renewal
    /// or a release (their owner hung or went away): such a claim has ended, and closing
    /// its file unlocks it, so a waiter blocked on it wakes and no descriptor is kept.
    fn close_run_out(&self) {
        let now = Instant::now();
        self.held_map().retain(|_, h| h.expires > now);
    }

    /// Ends claims this process holds: unlocks each file (closing it). The file stays,
    /// for the next claim of the key to reuse: creating and removing a file per claim
    /// cost about 3 ms per layer on ext4 (the inode freed at the last close), a third of
    /// a second for a cold scan of 200 small layers; `gc` and `clear` remove the files
    /// nobody holds.
    pub(crate) fn release(&self, claims: &[Claim]) -> Result<()> {
        let files: Vec<Held> = {
            let mut held = self.held_map();
            claims
                .iter()
                .filter_map(|c| held.remove(c.token()))
                .collect()
        };
        drop(files);
        Ok(())
    }

    /// Removes the files of claims nobody holds any more (their owner died) or whose
    /// lease ran out; returns how many. For `gc` and `clear`.
    pub(crate) fn sweep(&self) -> Result<u64> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("cannot list claims in", &self.dir, e)),
        };
        let Some(_guard) = self.guard()? else {
            return Ok(0);
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name() == GUARD || path.extension().is_none_or(|e| e != "lock") {
                continue;
            }
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let stale = match fs4::FileExt::try_lock(&file) {
                Ok(()) => true,
                Err(_) => read_lease(&path).is_some_and(|e| e <= SystemTime::now()),
            };
            if stale && remove(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Waits until the claim on `id` ends or `timeout` passes (see the module docs).
    pub(crate) async fn await_release(&self, id: &BlobId, timeout: Duration) -> Result<bool> {
        let path = self.path(id);
        let deadline = Instant::now() + timeout;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(Error::io("cannot wait for a claim in", &path, e)),
        };
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => return Ok(true),
            Err(fs4::TryLockError::WouldBlock) => {}
            Err(fs4::TryLockError::Error(e)) => {
                return Err(Error::io("cannot wait for a claim in", &path, e));
            }
        }
        // A thread of its own, not the blocking pool: it may stay blocked past this
        // wait (a hung owner), and must not hold up the runtime's shutdown. It unlocks
        // at once when it gets the lock.
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("scancache-claim-wait".into())
            .spawn(move || {
                let _ = fs4::FileExt::lock(&file);
                let _ = tx.send(());
            })
            .map_err(|e| Error::io("cannot wait for a claim in", &path, e))?;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let expiry = read_lease(&path);
            if expiry.is_some_and(|e| e <= SystemTime::now()) {
                return Ok(true);
            }
            // Wake at the recorded expiry (renewals push it on) or the deadline.
            let until_expiry = expiry
                .and_then(|e| e.duration_since(SystemTime::now()).ok())
                .map_or(deadline - now, |d| d + Duration::from_millis(5));
            let wake = now + until_expiry.min(deadline - now);
            tokio::select! {
                _ = &mut rx => return Ok(true),
                () = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Takes the guard, creating the claims directory when needed; `None` (after one
    /// warning) when another process keeps it past the wait.
    fn guard(&self) -> Result<Option<Guard>> {
        let path = self.dir.join(GUARD);
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder
                    .create(&self.dir)
                    .map_err(|e| Error::io("cannot create the claims directory", &self.dir, e))?;
                open().map_err(|e| Error::io("cannot open", &path, e))?
            }
            Err(e) => return Err(Error::io("cannot open", &path, e)),
        };
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => {
                    if self.guard_stuck.swap(false, Ordering::Relaxed) {
                        tracing::info!(guard = %path.display(), "the claims guard is free again; layers are claimed again");
                    }
                    return Ok(Some(Guard(file)));
                }
                Err(fs4::TryLockError::WouldBlock) if started.elapsed() >= self.guard_wait => {
                    if !self.guard_stuck.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            guard = %path.display(),
                            waited_s = self.guard_wait.as_secs_f64(),
                            "another process keeps the claims guard (it is stopped or hung); \
                             layers are analysed here without waiting for other scans until it lets go"
                        );
                    }
                    return Ok(None);
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(fs4::TryLockError::Error(e)) => return Err(Error::io("cannot lock", &path, e)),
            }
        }
    }

    fn token(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}-{n}", std::process::id())
    }

    fn held_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The guard `flock`, held while lock files are created or removed; unlocked on drop
/// (closing the file).
struct Guard(#[allow(dead_code, reason = "held for its lock")] File);

/// Writes `<expiry ms> <token>` over the file's text.
fn write_lease(mut file: &File, lease: Duration, token: &str) -> io::Result<()> {
    let expiry = SystemTime::now() + lease;
    let ms = expiry
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let text = format!("{ms} {token}\n");
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(text.as_bytes())
}

/// The expiry recorded in a lock file; `None` when it is absent or unreadable (a claim
/// being written: treated as live).
fn read_lease(path: &Path) -> Option<SystemTime> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let ms: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

/// Removes a file; one already gone is fine.
fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId::from(cache_core::Digest::from_sha256([n; 32]))
    }

    #[test]
    fn a_run_out_claim_has_its_file_closed_by_the_next_claim() {
        let dir = tempfile::tempdir().unwrap();
        let claims = Claims::new(dir.path());
        let first = claims.claim(&[id(1)], Duration::from_millis(50)).unwrap();
        assert!(matches!(first[0], Claimed::Owned(_)));
        let kept = claims.claim(&[id(3)], Duration::from_secs(30)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        claims.claim(&[id(2)], Duration::from_secs(30)).unwrap();
        assert_eq!(
            claims.held_map().len(),
            2,
            "the run-out claim's file is still open"
        );
        let file = File::open(claims.path(&id(1))).unwrap();
        assert!(
            fs4::FileExt::try_lock(&file).is_ok(),
            "the run-out claim's file is still locked"
        );
        let file = File::open(claims.path(&id(3))).unwrap();
        assert!(
            fs4::FileExt::try_lock(&file).is_err(),
            "a live claim's file was unlocked"
        );
        drop(kept);
    }

    #[test]
    fn a_guard_kept_by_a_stopped_process_is_waited_for_a_bounded_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut claims = Claims::new(dir.path());
        claims.guard_wait = Duration::from_millis(200);
        // A first claim makes the directory and the guard file; then the guard is held
        // through another open file description, whose flock excludes this one's as
        // another process's would.
        let _ = claims.claim(&[id(9)], Duration::from_secs(30)).unwrap();
        let stuck = File::open(dir.path().join(CLAIMS_DIR).join(GUARD)).unwrap();
        fs4::FileExt::lock(&stuck).unwrap();
        let started = Instant::now();
        let granted = claims
            .claim(&[id(1), id(2)], Duration::from_secs(30))
            .unwrap();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(
            granted
                .iter()
                .all(|c| matches!(c, Claimed::Owned(c) if c.is_unheld())),
            "{granted:?}"
        );
        assert!(
            !claims.path(&id(1)).exists(),
            "a lock file was made without the guard"
        );
        assert_eq!(claims.sweep().unwrap(), 0);
        drop(stuck);
        let granted = claims.claim(&[id(1)], Duration::from_secs(30)).unwrap();
        assert!(
            matches!(&granted[0], Claimed::Owned(c) if !c.is_unheld()),
            "{granted:?}"
        );
        assert!(claims.path(&id(1)).exists());
    }
}
