//! Reading one layer in a single streaming pass: the stored bytes are hashed (blob
//! digest), decompressed, hashed again (diffID), walked as tar and fed to the analysers,
//! all at once, so nothing larger than a package database is ever held in memory.

use std::{
    collections::BTreeSet,
    fmt,
    io::{self, BufRead, BufReader, Read},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use cache_core::{BlobInfo, Digest, codec::encoded_len};
use sha2::{Digest as _, Sha256};

use crate::{
    LayerWork, Progress,
    analyser::{Collector, MAX_SMALL_FILE, Target},
    codec::{self, Capped, Decoder, Format},
    error::{Result, ScanError},
    image::LayerRef,
    limits::{Crossed, LayerLimits, ScanCounters, Stop, Tally},
    tarfmt::{self, Kind, Streaming, TarError, TarReader},
};

/// Buffer between the archive file and the decompressor (smaller for a smaller layer:
/// a buffer is zeroed when first filled, which dominated images of many tiny layers).
const READ_BUFFER: usize = 256 << 10;
/// The smallest buffer of either kind.
const MIN_BUFFER: usize = 8 << 10;
/// Buffer between the decompressor and the tar reader.
const TAR_BUFFER: usize = 64 << 10;
/// One layer to read, and why.
#[derive(Clone, Debug)]
pub(crate) struct LayerTask {
    pub(crate) layer: LayerRef,
    pub(crate) work: LayerWork,
}

/// What every layer read of one scan shares.
pub(crate) struct Shared {
    /// The input's path, for messages.
    pub(crate) input: PathBuf,
    pub(crate) max_db_size: u64,
    pub(crate) max_layer_size: u64,
    /// The caps on each layer's result.
    pub(crate) limits: LayerLimits,
    pub(crate) progress: Option<Arc<dyn Progress>>,
    /// Set when another layer failed: reads stop at their next buffer.
    pub(crate) cancel: AtomicBool,
    /// What the analysed layers collapsed and skipped ([`Shared::counters`]).
    pub(crate) collapsed: AtomicU64,
    pub(crate) skipped: AtomicU64,
}

impl Shared {
    /// What the layers read so far collapsed and skipped.
    pub(crate) fn counters(&self) -> ScanCounters {
        ScanCounters {
            duplicates_collapsed: self.collapsed.load(Ordering::Relaxed),
            files_skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    fn count(&self, counters: ScanCounters) {
        self.collapsed
            .fetch_add(counters.duplicates_collapsed, Ordering::Relaxed);
        self.skipped
            .fetch_add(counters.files_skipped, Ordering::Relaxed);
    }
}

/// A failure inside the reader stack, carried through `io::Error` and told apart again
/// by [`LayerReader::error`].
#[derive(Debug)]
enum Fault {
    Cancelled,
    Read(io::Error),
    Decode(String),
    TooLarge,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Cancelled => f.write_str("cancelled"),
            Fault::Read(e) => write!(f, "{e}"),
            Fault::Decode(e) => f.write_str(e),
            Fault::TooLarge => f.write_str("layer too large"),
        }
    }
}

impl std::error::Error for Fault {}

fn is_fault(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Fault>())
}

/// `e` as a fault: as it is when it already is one, else wrapped by `wrap`.
fn fault(e: io::Error, wrap: impl FnOnce(io::Error) -> Fault) -> io::Error {
    if is_fault(&e) {
        e
    } else {
        io::Error::other(wrap(e))
    }
}

/// The stored bytes: counted, reported as progress, optionally hashed, cancellable.
struct Source<'a, R> {
    inner: R,
    hasher: Option<Sha256>,
    shared: &'a Shared,
}

impl<R: Read> Read for Source<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.shared.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other(Fault::Cancelled));
        }
        let n = self.inner.read(buf).map_err(|e| fault(e, Fault::Read))?;
        let chunk = buf.get(..n).unwrap_or_default();
        if let Some(h) = &mut self.hasher {
            h.update(chunk);
        }
        if let Some(p) = &self.shared.progress {
            p.bytes_read(n as u64);
        }
        Ok(n)
    }
}

/// The stored bytes, the magic bytes read to judge the format first (hashed already as
/// they passed), then the rest.
struct Replay<'a, R> {
    magic: io::Cursor<Vec<u8>>,
    source: Source<'a, R>,
}

impl<R: Read> Read for Replay<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.magic.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        self.source.read(buf)
    }
}

/// The decompressor, its failures told apart from those of the stored bytes.
struct Decoding<R: BufRead> {
    decoder: Decoder<R>,
}

impl<R: BufRead> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder
            .read(buf)
            .map_err(|e| fault(e, |e| Fault::Decode(e.to_string())))
    }
}

/// The uncompressed bytes: hashed (diffID), counted and capped.
struct Uncompressed<R> {
    inner: Capped<R>,
    hasher: Sha256,
}

impl<R: Read> Read for Uncompressed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).map_err(|e| {
            if codec::exceeded(&e).is_some() {
                io::Error::other(Fault::TooLarge)
            } else {
                e
            }
        })?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Reads one layer from `input` (its stored bytes), verifying its digests, and returns
/// its analysis (`None` for [`LayerWork::Verify`]).
pub(crate) fn read_layer<R: Read>(
    task: &LayerTask,
    input: R,
    shared: &Shared,
) -> Result<Option<BlobInfo>> {
    if let Some(p) = &shared.progress {
        p.layer_started(task.layer.diff_id.as_str(), task.work);
    }
    let reader = LayerReader { task, shared };
    let blob = reader.run(input)?;
    if let Some(p) = &shared.progress {
        p.layer_finished(task.layer.diff_id.as_str(), task.work);
    }
    Ok(blob)
}

struct LayerReader<'a> {
    task: &'a LayerTask,
    shared: &'a Shared,
}

/// One layer's reader stack, bottom to top: the stored bytes (counted, hashed for the
/// blob digest), the decompressor, the uncompressed bytes (hashed for the diffID,
/// capped), the tar reader.
type LayerTar<'a, R> =
    TarReader<Streaming<BufReader<Uncompressed<Decoding<BufReader<Replay<'a, R>>>>>>>;

/// A layer stream opened for walking.
struct Opened<'a, R: Read> {
    tar: LayerTar<'a, R>,
    /// The compression judged from the stored bytes.
    format: Format,
}

/// What walking a layer's entries found.
struct Walked {
    collector: Collector,
    /// What it holds so far, against the caps.
    tally: Tally,
    whiteouts: BTreeSet<String>,
    opaque: BTreeSet<String>,
}

/// What a whole layer stream hashed to.
struct Digests {
    /// Of the uncompressed content.
    diff_id: Digest,
    /// Of the stored bytes; `None` when they were not hashed apart from the content
    /// (an uncompressed blob named by its diffID).
    blob_digest: Option<Digest>,
    /// Uncompressed bytes.
    size: u64,
}

impl<'s> LayerReader<'s> {
    fn run<R: Read>(&self, input: R) -> Result<Option<BlobInfo>> {
        let Opened { mut tar, format } = self.open(input)?;
        // A malformed tar stream is reported only if nothing more basic is wrong: the
        // rest is still read so that a corrupt compressed stream or a digest mismatch,
        // the likelier causes, are named instead.
        let walked = match self.walk(&mut tar, format) {
            Err(e) if !matches!(e, ScanError::LayerFormat { .. }) => return Err(e),
            walked => walked,
        };
        let digests = self.drain(tar, format, walked.is_err())?;
        self.verify(&digests)?;
        let walked = walked?;
        if self.task.work == LayerWork::Verify {
            return Ok(None);
        }
        self.blob(walked, &digests).map(Some)
    }

    /// Sets up the reader stack over the stored bytes `input`, judging the compression
    /// from its first bytes.
    fn open<R: Read>(&self, input: R) -> Result<Opened<'s, R>> {
        let layer = &self.task.layer;
        let mut source = Source {
            inner: input,
            hasher: layer.blob_digest.as_ref().map(|_| Sha256::new()),
            shared: self.shared,
        };
        // Enough bytes to judge the format, however little each read returns; they are
        // hashed as they pass and put back in front of the rest.
        let mut magic = [0u8; codec::MAGIC_LEN];
        let got = codec::read_prefix(&mut source, &mut magic)
            .map_err(|e| self.error(e, Format::Plain))?;
        let magic = magic.get(..got).unwrap_or_default();
        let format = Format::sniff(magic);
        if let Some(declared) = layer
            .media_type
            .as_deref()
            .and_then(Format::from_media_type)
            && declared != format
        {
            tracing::warn!(
                layer = %layer.diff_id,
                media_type = layer.media_type.as_deref().unwrap_or_default(),
                content = format.name(),
                "layer media type disagrees with its content; reading it as its content"
            );
        }
        // An uncompressed blob whose digest is its diffID needs hashing only once.
        if format == Format::Plain && layer.blob_digest.as_ref() == Some(&layer.diff_id) {
            source.hasher = None;
        }
        let stored_size = layer.size.and_then(|s| usize::try_from(s).ok());
        let fit = |cap: usize| stored_size.map_or(cap, |s| s.clamp(MIN_BUFFER, cap));
        let stored = BufReader::with_capacity(
            fit(READ_BUFFER),
            Replay {
                magic: io::Cursor::new(magic.to_vec()),
                source,
            },
        );
        let decoder =
            Decoder::new(format, stored).map_err(|e| self.decompress(format, e.to_string()))?;
        let uncompressed = Uncompressed {
            inner: Capped::new(Decoding { decoder }, self.shared.max_layer_size),
            hasher: Sha256::new(),
        };
        // Uncompressed, the content is as large as the stored bytes.
        let tar_buffer = if format == Format::Plain {
            fit(TAR_BUFFER)
        } else {
            TAR_BUFFER
        };
        let tar = TarReader::new(Streaming(BufReader::with_capacity(
            tar_buffer,
            uncompressed,
        )));
        Ok(Opened { tar, format })
    }

    /// Reads whatever follows the end-of-archive marker, so both digests cover the whole
    /// stream, and finishes the hashes. A malformed tar stream met while draining is not
    /// reported again when the walk already failed on it.
    fn drain<R: Read>(
        &self,
        tar: LayerTar<'_, R>,
        format: Format,
        walk_failed: bool,
    ) -> Result<Digests> {
        let mut rest = tar.into_inner().into_inner();
        let drained = io::copy(&mut rest, &mut io::sink()).map_err(|e| self.error(e, format));
        let Uncompressed { inner, hasher } = rest.into_inner();
        let size = inner.bytes_read();
        let mut stored = inner.into_inner().decoder.into_inner();
        let drained = drained.and_then(|_| {
            io::copy(&mut stored, &mut io::sink()).map_err(|e| self.error(e, format))
        });
        match drained {
            Err(ScanError::LayerFormat { .. }) if walk_failed => {}
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let Replay { source, .. } = stored.into_inner();
        Ok(Digests {
            diff_id: Digest::from_sha256(hasher.finalize().into()),
            blob_digest: source
                .hasher
                .map(|h| Digest::from_sha256(h.finalize().into())),
            size,
        })
    }

    /// Checks the stored bytes against the blob digest the manifest names (if any), then
    /// the content against the diffID.
    fn verify(&self, digests: &Digests) -> Result<()> {
        let layer = &self.task.layer;
        if let Some(expected) = &layer.blob_digest {
            let actual = digests.blob_digest.as_ref().unwrap_or(&digests.diff_id);
            if actual != expected {
                return Err(ScanError::DigestMismatch {
                    what: "blob",
                    name: layer.name.clone(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        if digests.diff_id != layer.diff_id {
            return Err(ScanError::DigestMismatch {
                what: "layer",
                name: layer.name.clone(),
                expected: layer.diff_id.to_string(),
                actual: digests.diff_id.to_string(),
            });
        }
        Ok(())
    }

    /// The layer's analysis, from what the walk found, within the caps: the document's
    /// exact size is checked here, so that nothing over the cap reaches the cache.
    fn blob(&self, walked: Walked, digests: &Digests) -> Result<BlobInfo> {
        let layer = &self.task.layer;
        let mut blob = BlobInfo {
            schema_version: BlobInfo::SCHEMA_VERSION,
            size: i64::try_from(digests.size).unwrap_or(i64::MAX),
            digest: layer
                .blob_digest
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            diff_id: layer.diff_id.to_string(),
            created_by: layer.created_by.clone(),
            whiteout_files: walked.whiteouts.into_iter().collect(),
            opaque_dirs: walked.opaque.into_iter().collect(),
            ..BlobInfo::default()
        };
        let mut tally = walked.tally;
        walked
            .collector
            .finish_within(&mut blob, &mut tally)
            .map_err(|c| self.crossed(c))?;
        if let Some(cap) = self.shared.limits.max_document {
            let size = encoded_len(&blob);
            if size > cap {
                return Err(self.crossed(Crossed {
                    limit: crate::Limit::DocumentSize,
                    cap,
                    reached: size,
                }));
            }
        }
        if tally.counters != ScanCounters::default() {
            tracing::debug!(
                layer = %layer.diff_id,
                duplicates_collapsed = tally.counters.duplicates_collapsed,
                files_skipped = tally.counters.files_skipped,
                "layer analysed"
            );
        }
        self.shared.count(tally.counters);
        Ok(blob)
    }

    /// The error for a crossed cap, logged with the counters of crossed caps.
    fn crossed(&self, c: Crossed) -> ScanError {
        tracing::debug!(
            layer = %self.task.layer.diff_id,
            limit = c.limit.name(),
            cap = c.cap,
            reached = c.reached,
            "layer crossed a cap"
        );
        ScanError::LimitExceeded {
            subject: format!("layer {}", self.task.layer.diff_id),
            limit: c.limit,
            cap: c.cap,
            reached: c.reached,
        }
    }

    /// Walks the layer's entries: records whiteouts and hands wanted files to the
    /// analysers.
    fn walk<R: tarfmt::Skip>(&self, tar: &mut TarReader<R>, format: Format) -> Result<Walked> {
        let analyse = self.task.work == LayerWork::Analyse;
        let mut collector = Collector::default();
        let mut tally = Tally::new(self.shared.limits);
        let mut whiteouts = BTreeSet::new();
        let mut opaque = BTreeSet::new();
        loop {
            let entry = match tar.next_entry() {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(TarError::Io(e)) => return Err(self.error(e, format)),
                Err(e) => return Err(self.format_error(e.describe())),
            };
            let Some(path) = tarfmt::clean_path(&entry.path) else {
                tracing::debug!(layer = %self.task.layer.diff_id, name = %entry.path, "ignoring entry with an unsafe name");
                continue;
            };
            let (dir, file) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            if file == ".wh..wh..opq" {
                if opaque.insert(format!("{dir}/")) && analyse {
                    tally
                        .grow(dir.len() as u64 + 4)
                        .map_err(|c| self.crossed(c))?;
                }
                continue;
            }
            if let Some(deleted) = file.strip_prefix(".wh.") {
                // `.wh..wh.*` other than the opaque marker are aufs internals.
                if !deleted.starts_with(".wh.") && !deleted.is_empty() {
                    let whiteout = if dir.is_empty() {
                        deleted.to_owned()
                    } else {
                        format!("{dir}/{deleted}")
                    };
                    let weight = whiteout.len() as u64 + 3;
                    if whiteouts.insert(whiteout) && analyse {
                        tally.grow(weight).map_err(|c| self.crossed(c))?;
                    }
                }
                continue;
            }
            if !analyse {
                continue;
            }
            let Some(target) = Target::of(&path) else {
                continue;
            };
            if entry.kind != Kind::File {
                tracing::debug!(layer = %self.task.layer.diff_id, path, kind = ?entry.kind, "not following a link or non-file in place of an analysed file");
                continue;
            }
            if target.is_package_db() {
                if entry.size > self.shared.max_db_size {
                    return Err(ScanError::PackageDbTooLarge {
                        layer: self.task.layer.diff_id.to_string(),
                        path,
                        size: entry.size,
                        limit: self.shared.max_db_size,
                    });
                }
                // Streamed into its parser, which keeps only what it uses and stops at
                // the first cap crossed: memory does not grow with the file.
                let buffer = usize::try_from(entry.size)
                    .map_or(TAR_BUFFER, |s| s.clamp(MIN_BUFFER, TAR_BUFFER));
                let mut data = BufReader::with_capacity(buffer, tar.data());
                match collector.add_db(target, &path, &mut data, &mut tally) {
                    Ok(()) => {}
                    Err(Stop::Crossed(c)) => return Err(self.crossed(c)),
                    Err(Stop::Io(e)) => return Err(self.error(e, format)),
                }
                continue;
            } else if entry.size > MAX_SMALL_FILE {
                tracing::warn!(layer = %self.task.layer.diff_id, path, size = entry.size, "ignoring an oversized OS file");
                tally.counters.files_skipped += 1;
                continue;
            }
            let mut data =
                Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0).min(1 << 20));
            tar.data()
                .read_to_end(&mut data)
                .map_err(|e| self.error(e, format))?;
            collector.add(target, &path, &data);
        }
        Ok(Walked {
            collector,
            tally,
            whiteouts,
            opaque,
        })
    }

    /// Turns an error from the reader stack into the scan error it stands for.
    fn error(&self, e: io::Error, format: Format) -> ScanError {
        if !is_fault(&e) {
            return self.format_error(e.to_string());
        }
        let fault = e
            .into_inner()
            .and_then(|inner| inner.downcast::<Fault>().ok());
        match fault.map(|f| *f) {
            Some(Fault::Cancelled) => {
                ScanError::Internal("cancelled after another layer failed".into())
            }
            Some(Fault::Read(e)) => match codec::exceeded(&e) {
                // The layer lies inside an archive compressed as a whole, which hit its
                // decompression limit.
                Some(limit) => ScanError::ArchiveTooLarge {
                    path: self.shared.input.clone(),
                    limit,
                },
                None => ScanError::io("read", self.shared.input.clone(), e),
            },
            Some(Fault::Decode(reason)) => self.decompress(format, reason),
            Some(Fault::TooLarge) => ScanError::LayerTooLarge {
                layer: self.task.layer.diff_id.to_string(),
                name: self.task.layer.name.clone(),
                limit: self.shared.max_layer_size,
            },
            None => ScanError::Internal("unrecognised reader failure".into()),
        }
    }

    fn decompress(&self, format: Format, reason: String) -> ScanError {
        ScanError::Decompress {
            layer: self.task.layer.diff_id.to_string(),
            name: self.task.layer.name.clone(),
            format: format.name(),
            reason,
        }
    }

    fn format_error(&self, reason: String) -> ScanError {
        ScanError::LayerFormat {
            layer: self.task.layer.diff_id.to_string(),
            name: self.task.layer.name.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use cache_fixtures::{Compression, compress, tar_of};

    use super::*;

    /// Hands out one byte per read, like a slow pipe.
    struct OneByte<R>(R);

    impl<R: Read> Read for OneByte<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match buf.first_mut() {
                Some(b) => self.0.read(std::slice::from_mut(b)),
                None => Ok(0),
            }
        }
    }

    #[test]
    fn format_is_judged_on_enough_bytes_from_a_trickling_reader() {
        let status = b"Package: a\nStatus: install ok installed\nVersion: 1\n";
        let tar = tar_of(&[("var/lib/dpkg/status".to_owned(), status.to_vec())].into());
        let diff_id = Digest::from_sha256(Sha256::digest(&tar).into());
        let gzip = compress(&tar, Compression::Gzip);
        let zstd = compress(&tar, Compression::Zstd);
        let shared = Shared {
            input: "a.tar".into(),
            max_db_size: 1 << 20,
            max_layer_size: 1 << 20,
            limits: LayerLimits::UNBOUNDED,
            progress: None,
            cancel: AtomicBool::new(false),
            collapsed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        };
        for (what, stored) in [("gzip", gzip), ("zstd", zstd), ("plain", tar.clone())] {
            let task = LayerTask {
                layer: LayerRef {
                    name: "layer".into(),
                    media_type: None,
                    blob_digest: Some(Digest::from_sha256(Sha256::digest(&stored).into())),
                    size: None,
                    diff_id: diff_id.clone(),
                    created_by: String::new(),
                },
                work: LayerWork::Analyse,
            };
            let blob = match read_layer(&task, OneByte(&stored[..]), &shared) {
                Ok(Some(blob)) => blob,
                other => panic!("{what}: {other:?}"),
            };
            assert_eq!(blob.package_infos.len(), 1, "{what}");
        }
    }
}
