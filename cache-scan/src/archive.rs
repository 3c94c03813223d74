//! The input archive, where an image's files live: a directory, a tar file indexed by
//! seeking, or a tar compressed as a whole that can only be streamed.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom},
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use crate::{
    codec::{self, Capped, Decoder, Format, read_capped},
    error::{Result, ScanError},
    tarfmt::{self, Kind, Seeking, Streaming, TarError, TarReader},
};

/// Largest manifest, index or config accepted.
pub(crate) const MAX_METADATA: u64 = 16 << 20;
/// Metadata-like entries of a streamed archive up to this size are kept from the
/// indexing pass, so manifests and configs need no second pass.
const KEEP_SMALL: u64 = 256 << 10;
/// Total bytes kept from the indexing pass.
const KEEP_BUDGET: u64 = 16 << 20;
/// Links followed at most when resolving a name inside an archive.
const MAX_LINKS: usize = 8;

/// A file's place inside a tar archive.
#[derive(Clone, Copy, Debug)]
struct Located {
    offset: u64,
    size: u64,
    /// The entry's position among the archive's entries (0 = first). A streamed archive
    /// is read by ordinal, so a name that occurs twice always means the same (last)
    /// entry, as it does when seeking.
    ordinal: u64,
}

/// The names of a tar archive: regular files and links, by cleaned name. When a name
/// occurs more than once, the last entry wins (as when extracting the archive), for
/// plain and compressed archives alike.
#[derive(Debug, Default)]
pub(crate) struct Index {
    files: HashMap<String, Located>,
    links: HashMap<String, String>,
}

impl Index {
    fn add(&mut self, entry: &tarfmt::Entry, ordinal: u64) {
        let Some(name) = tarfmt::clean_path(&entry.path) else {
            tracing::debug!(name = %entry.path, "ignoring archive entry with an unsafe name");
            return;
        };
        match entry.kind {
            Kind::File => {
                self.links.remove(&name);
                self.files.insert(
                    name,
                    Located {
                        offset: entry.offset,
                        size: entry.size,
                        ordinal,
                    },
                );
            }
            Kind::Symlink | Kind::Hardlink => {
                // Symlink targets are relative to the link's directory; hard link targets
                // are archive names.
                let target = if entry.kind == Kind::Symlink {
                    let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                    resolve_relative(dir, &entry.link)
                } else {
                    tarfmt::clean_path(&entry.link)
                };
                if let Some(target) = target {
                    self.files.remove(&name);
                    self.links.insert(name, target);
                }
            }
            _ => {}
        }
    }

    /// Resolves a name through links to a regular file.
    fn resolve(&self, name: &str) -> Option<(String, Located)> {
        let mut name = name.to_owned();
        for _ in 0..=MAX_LINKS {
            if let Some(loc) = self.files.get(&name) {
                return Some((name, *loc));
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }
}

/// The input archive, opened: its kind and the index of its entries.
#[derive(Debug)]
pub(crate) enum Archive {
    /// An image layout directory (OCI, or an extracted docker-save).
    Dir { root: PathBuf },
    /// A tar file; entries are read by seeking.
    Tar { path: PathBuf, index: Index },
    /// A gzip- or zstd-compressed tar: no seeking, every read is a pass over the stream.
    Stream {
        path: PathBuf,
        /// [`Format::Gzip`] or [`Format::Zstd`].
        codec: Format,
        index: Index,
        /// Small metadata-like entries kept from the indexing pass, by ordinal.
        kept: HashMap<u64, Vec<u8>>,
        /// Most bytes one pass may decompress.
        limit: u64,
    },
}

impl Archive {
    /// Opens `path`: indexes a tar by walking its headers (seeking past data), or streams
    /// a compressed tar once to index it and keep its small entries.
    ///
    /// `limit` bounds how many bytes one pass over a compressed-as-a-whole archive may
    /// decompress (past it, [`ScanError::ArchiveTooLarge`]), so a decompression bomb
    /// wastes bounded time.
    pub(crate) fn open(path: &Path, limit: u64) -> Result<Archive> {
        let meta = std::fs::metadata(path).map_err(|e| ScanError::io("open", path, e))?;
        if meta.is_dir() {
            if !path.join("manifest.json").is_file() && !path.join("index.json").is_file() {
                return Err(ScanError::NotAnArchive {
                    path: path.into(),
                    reason: "a directory without manifest.json or index.json".into(),
                });
            }
            return Ok(Archive::Dir { root: path.into() });
        }
        let mut file = File::open(path).map_err(|e| ScanError::io("open", path, e))?;
        let mut magic = [0u8; codec::MAGIC_LEN];
        let got = codec::read_prefix(&mut file, &mut magic)
            .map_err(|e| ScanError::io("read", path, e))?;
        let magic = magic.get(..got).unwrap_or_default();
        if magic.is_empty() {
            return Err(ScanError::NotAnArchive {
                path: path.into(),
                reason: "the file is empty".into(),
            });
        }
        let codec = match Format::sniff(magic) {
            Format::Plain => None,
            codec @ (Format::Gzip | Format::Zstd) => Some(codec),
            Format::Unsupported(name) => {
                return Err(ScanError::NotAnArchive {
                    path: path.into(),
                    reason: format!("{name} compression is not supported"),
                });
            }
        };
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ScanError::io("read", path, e))?;
        match codec {
            None => Archive::index_tar(path, file, meta.len()),
            Some(codec) => Archive::index_stream(path, file, codec, limit),
        }
    }

    /// Indexes a tar file by walking its headers, seeking past entry data.
    fn index_tar(path: &Path, file: File, len: u64) -> Result<Archive> {
        let mut index = Index::default();
        let mut reader = TarReader::new(Seeking::new(file, len));
        walk(path, &mut reader, |entry, ordinal, _| {
            index.add(entry, ordinal);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(Archive::Tar {
            path: path.into(),
            index,
        })
    }

    /// Streams a compressed tar once to index it, keeping its small metadata-like
    /// entries.
    fn index_stream(path: &Path, file: File, codec: Format, limit: u64) -> Result<Archive> {
        let mut index = Index::default();
        let mut kept = HashMap::new();
        let mut budget = KEEP_BUDGET;
        let mut reader = TarReader::new(Streaming(decoder(file, codec, path, limit)?));
        walk(path, &mut reader, |entry, ordinal, data| {
            index.add(entry, ordinal);
            let name = tarfmt::clean_path(&entry.path);
            if let (Some(name), Kind::File) = (name, entry.kind)
                && entry.size <= KEEP_SMALL
                && entry.size <= budget
                && is_metadata_like(&name)
            {
                let buf = read_capped(data, KEEP_SMALL)?;
                budget -= entry.size;
                kept.insert(ordinal, buf);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        // Kept entries shadowed by a later entry or link of the same name are not what
        // the name means.
        let current: std::collections::HashSet<u64> =
            index.files.values().map(|loc| loc.ordinal).collect();
        kept.retain(|ordinal, _| current.contains(ordinal));
        Ok(Archive::Stream {
            path: path.into(),
            codec,
            index,
            kept,
            limit,
        })
    }

    /// The input's path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Archive::Dir { root } => root,
            Archive::Tar { path, .. } | Archive::Stream { path, .. } => path,
        }
    }

    /// True when entries can only be read by streaming the whole archive again.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Archive::Stream { .. })
    }

    /// True when `name` (a cleaned name) exists as a file, through links.
    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Archive::Dir { root } => root.join(name).is_file(),
            Archive::Tar { index, .. } | Archive::Stream { index, .. } => {
                index.resolve(name).is_some()
            }
        }
    }

    /// The stored size of `name`, when it exists.
    pub(crate) fn size(&self, name: &str) -> Option<u64> {
        match self {
            Archive::Dir { root } => std::fs::metadata(root.join(name)).ok().map(|m| m.len()),
            Archive::Tar { index, .. } | Archive::Stream { index, .. } => {
                index.resolve(name).map(|(_, loc)| loc.size)
            }
        }
    }

    /// Reads a small file (manifest, index, config) whole. `what` names it in errors.
    pub(crate) fn read_metadata(&self, name: &str, what: &'static str) -> Result<Vec<u8>> {
        let missing = || ScanError::Missing {
            path: self.path().into(),
            what,
            name: name.into(),
        };
        let too_large = || ScanError::InvalidMetadata {
            path: self.path().into(),
            what,
            name: name.into(),
            reason: format!("larger than {MAX_METADATA} bytes"),
        };
        let size = self.size(name).ok_or_else(missing)?;
        if size > MAX_METADATA {
            return Err(too_large());
        }
        match self {
            Archive::Dir { .. } | Archive::Tar { .. } => {
                let (reader, _) = self.open_entry(name, what)?;
                match read_capped(reader, MAX_METADATA) {
                    Ok(buf) => Ok(buf),
                    Err(e) if e.kind() == io::ErrorKind::FileTooLarge => Err(too_large()),
                    Err(e) => Err(ScanError::io("read", self.path(), e)),
                }
            }
            Archive::Stream { index, kept, .. } => {
                let (_, loc) = index.resolve(name).ok_or_else(missing)?;
                if let Some(data) = kept.get(&loc.ordinal) {
                    return Ok(data.clone());
                }
                let mut found = None;
                let mut over = false;
                self.stream_files(|ordinal, data| {
                    if ordinal != loc.ordinal {
                        return Ok(ControlFlow::Continue(()));
                    }
                    match read_capped(data, MAX_METADATA) {
                        Ok(buf) => found = Some(buf),
                        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => over = true,
                        Err(e) => return Err(e),
                    }
                    Ok(ControlFlow::Break(()))
                })?;
                if over {
                    return Err(too_large());
                }
                found.ok_or_else(missing)
            }
        }
    }

    /// Opens one file for streaming (not for [`Archive::Stream`]; use
    /// [`Archive::stream_files`]). Returns the reader and the stored size.
    pub(crate) fn open_entry(
        &self,
        name: &str,
        what: &'static str,
    ) -> Result<(Box<dyn Read + Send>, u64)> {
        let missing = || ScanError::Missing {
            path: self.path().into(),
            what,
            name: name.into(),
        };
        match self {
            Archive::Dir { root } => {
                let path = root.join(name);
                let file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(ScanError::io("open", path, e)),
                };
                let size = file
                    .metadata()
                    .map_err(|e| ScanError::io("read", &path, e))?
                    .len();
                Ok((Box::new(file.take(size)), size))
            }
            Archive::Tar { path, index } => {
                let (_, loc) = index.resolve(name).ok_or_else(missing)?;
                let mut file = File::open(path).map_err(|e| ScanError::io("open", path, e))?;
                file.seek(SeekFrom::Start(loc.offset))
                    .map_err(|e| ScanError::io("read", path, e))?;
                Ok((Box::new(file.take(loc.size)), loc.size))
            }
            Archive::Stream { .. } => Err(ScanError::Internal(
                "a compressed archive cannot be read at random".into(),
            )),
        }
    }

    /// Streams a compressed archive once, handing every regular file (its ordinal, as
    /// [`Archive::ordinal`] gives it, and its data) to `visit` until it breaks. Only for
    /// [`Archive::Stream`].
    pub(crate) fn stream_files<F>(&self, mut visit: F) -> Result<()>
    where
        F: FnMut(u64, &mut dyn Read) -> io::Result<ControlFlow<()>>,
    {
        let Archive::Stream {
            path, codec, limit, ..
        } = self
        else {
            return Err(ScanError::Internal("not a streamed archive".into()));
        };
        let file = File::open(path).map_err(|e| ScanError::io("open", path, e))?;
        let mut reader = TarReader::new(Streaming(decoder(file, *codec, path, *limit)?));
        walk(path, &mut reader, |entry, ordinal, data| {
            if entry.kind != Kind::File {
                return Ok(ControlFlow::Continue(()));
            }
            visit(ordinal, data)
        })
    }

    /// The ordinal of the entry `name` (through links) means in a streamed archive.
    pub(crate) fn ordinal(&self, name: &str) -> Option<u64> {
        match self {
            Archive::Stream { index, .. } => index.resolve(name).map(|(_, loc)| loc.ordinal),
            Archive::Dir { .. } | Archive::Tar { .. } => None,
        }
    }

    /// Resolves `name` through the archive's links to the name of a regular file.
    pub(crate) fn resolve(&self, name: &str) -> Option<String> {
        match self {
            Archive::Dir { .. } => Some(name.to_owned()),
            Archive::Tar { index, .. } | Archive::Stream { index, .. } => {
                index.resolve(name).map(|(n, _)| n)
            }
        }
    }
}

/// Resolves a symlink target relative to the link's directory. `None` when it is
/// absolute or climbs above the archive root.
fn resolve_relative(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Names that may hold a manifest, index or config (OCI blobs may be any of them).
fn is_metadata_like(name: &str) -> bool {
    name.ends_with(".json")
        || name == "oci-layout"
        || name == "repositories"
        || name.starts_with("blobs/")
}

/// The decompressed stream of a compressed-as-a-whole archive, capped at `limit` bytes.
fn decoder(
    file: File,
    codec: Format,
    path: &Path,
    limit: u64,
) -> Result<Capped<Decoder<BufReader<File>>>> {
    let buffered = BufReader::with_capacity(128 << 10, file);
    let decoder = Decoder::new(codec, buffered).map_err(|e| ScanError::io("read", path, e))?;
    Ok(Capped::new(decoder, limit))
}

/// Walks every entry of an archive, mapping tar errors to scan errors about `path`.
fn walk<R, F>(path: &Path, reader: &mut TarReader<R>, mut visit: F) -> Result<()>
where
    R: tarfmt::Skip,
    F: FnMut(&tarfmt::Entry, u64, &mut dyn Read) -> io::Result<ControlFlow<()>>,
{
    let mut count = 0u64;
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => return Err(archive_error(path, e, count == 0)),
        };
        let ordinal = count;
        count += 1;
        match visit(&entry, ordinal, &mut reader.data()) {
            Ok(ControlFlow::Continue(())) => {}
            Ok(ControlFlow::Break(())) => return Ok(()),
            Err(e) => return Err(archive_error(path, TarError::Io(e), false)),
        }
    }
    if count == 0 {
        return Err(ScanError::NotAnArchive {
            path: path.into(),
            reason: "no tar entries".into(),
        });
    }
    Ok(())
}

fn archive_error(path: &Path, e: TarError, first: bool) -> ScanError {
    if let TarError::Io(e) = &e
        && let Some(limit) = codec::exceeded(e)
    {
        return ScanError::ArchiveTooLarge {
            path: path.into(),
            limit,
        };
    }
    match e {
        TarError::Invalid(reason) if first => ScanError::NotAnArchive {
            path: path.into(),
            reason: format!("not a tar archive ({reason})"),
        },
        TarError::Invalid(reason) => ScanError::NotAnArchive {
            path: path.into(),
            reason: format!("corrupt tar archive ({reason})"),
        },
        TarError::Truncated(reason) => ScanError::Truncated {
            path: path.into(),
            reason,
        },
        TarError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => ScanError::Truncated {
            path: path.into(),
            reason: e.to_string(),
        },
        TarError::Io(e)
            if first
                || e.kind() == io::ErrorKind::InvalidData
                || e.kind() == io::ErrorKind::InvalidInput =>
        {
            ScanError::NotAnArchive {
                path: path.into(),
                reason: format!("cannot decompress: {e}"),
            }
        }
        TarError::Io(e) => ScanError::io("read", path, e),
    }
}

#[cfg(test)]
mod tests {
    use cache_fixtures::{Compression, TarWriter, compress};

    use super::*;

    type Writer = TarWriter<Vec<u8>>;

    /// Writes `build`'s tar as `name` in a new temp dir, compressed as a whole with
    /// `compression`.
    fn write(
        name: &str,
        compression: Compression,
        build: impl FnOnce(&mut Writer),
    ) -> (tempfile::TempDir, PathBuf) {
        let mut w = TarWriter::in_memory();
        build(&mut w);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, compress(&w.into_bytes(), compression)).unwrap();
        (dir, path)
    }

    fn archive(build: impl FnOnce(&mut Writer)) -> (tempfile::TempDir, PathBuf) {
        write("a.tar", Compression::None, build)
    }

    /// Writes `build`'s tar gzip-compressed as a whole.
    fn gz_archive(build: impl FnOnce(&mut Writer)) -> (tempfile::TempDir, PathBuf) {
        write("a.tar.gz", Compression::Gzip, build)
    }

    fn file(w: &mut Writer, name: &str, data: &[u8]) {
        w.file(name, data).unwrap();
    }

    /// Valid JSON of `len` bytes or more, ending in `tag`.
    fn json(len: usize, tag: &str) -> Vec<u8> {
        format!("{}{{\"tag\":\"{tag}\"}}", " ".repeat(len)).into_bytes()
    }

    #[test]
    fn duplicate_names_mean_the_last_entry_everywhere() {
        let big = KEEP_SMALL as usize + 1000;
        let cases: [(&str, Vec<u8>, Vec<u8>); 3] = [
            // Both kept from the indexing pass.
            ("small, small", b"first".to_vec(), json(10, "last")),
            // The first is kept, the last is not: the kept one must not answer.
            ("small, big", b"first".to_vec(), json(big, "last")),
            // A huge first entry is never read: only the indexed (last) one is.
            (
                "huge, big",
                vec![b'x'; MAX_METADATA as usize + (1 << 20)],
                json(big, "last"),
            ),
        ];
        for (what, first, last) in cases {
            let build = |b: &mut Writer| {
                file(b, "manifest.json", &first);
                file(b, "other", b"x");
                file(b, "manifest.json", &last);
            };
            let (_d1, plain) = archive(build);
            let (_d2, gz) = gz_archive(build);
            for path in [plain, gz] {
                let c = Archive::open(&path, u64::MAX).unwrap();
                assert_eq!(c.size("manifest.json"), Some(last.len() as u64), "{what}");
                let got = c.read_metadata("manifest.json", "manifest").unwrap();
                assert!(got == last, "{what}: {}", path.display());
            }
        }
    }

    #[test]
    fn metadata_reads_are_capped() {
        assert_eq!(read_capped(&[7u8; 10][..], 10).unwrap().len(), 10);
        let err = read_capped(&[7u8; 11][..], 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        let (_dir, path) = gz_archive(|b| {
            file(b, "manifest.json", &vec![b' '; MAX_METADATA as usize + 1]);
        });
        let c = Archive::open(&path, u64::MAX).unwrap();
        let err = c.read_metadata("manifest.json", "manifest").unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn decompression_of_a_whole_archive_is_capped() {
        let (_dir, path) = gz_archive(|b| {
            file(b, "manifest.json", b"[]");
            file(b, "zeros", &vec![0u8; 1 << 20]);
        });
        let err = Archive::open(&path, 64 << 10).unwrap_err();
        assert!(
            matches!(err, ScanError::ArchiveTooLarge { limit: 65536, .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("decompresses to more than 65536 bytes"),
            "{err}"
        );
        let c = Archive::open(&path, 2 << 20).unwrap();
        assert!(c.exists("zeros"));
    }

    #[test]
    fn links_inside_archives_resolve() {
        // Older `docker save` stores a repeated layer as a symlink to its first copy.
        let (_dir, path) = archive(|b| {
            file(b, "a/layer.tar", b"layer");
            b.symlink("b/layer.tar", "../a/layer.tar").unwrap();
            b.hardlink("c/layer.tar", "b/layer.tar").unwrap();
            b.symlink("loop1", "loop2").unwrap();
            b.symlink("loop2", "loop1").unwrap();
            b.symlink("escape", "../../etc/passwd").unwrap();
        });
        let c = Archive::open(&path, u64::MAX).unwrap();
        for name in ["a/layer.tar", "b/layer.tar", "c/layer.tar"] {
            assert!(c.exists(name), "{name}");
            assert_eq!(c.resolve(name).as_deref(), Some("a/layer.tar"));
            let (mut r, size) = c.open_entry(name, "layer").unwrap();
            let mut data = String::new();
            r.read_to_string(&mut data).unwrap();
            assert_eq!((data.as_str(), size), ("layer", 5));
        }
        for name in ["loop1", "escape", "nope"] {
            assert!(!c.exists(name), "{name}");
        }
    }
}
