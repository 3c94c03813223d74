//! Where an image's files live: a directory, a tar file indexed by seeking, or a tar
//! compressed as a whole that can only be streamed.

use std::{
    collections::HashMap,
    fs::File,
    io::{self, BufReader, Read, Seek, SeekFrom},
    ops::ControlFlow,
    path::{Path, PathBuf},
};

use crate::{
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

/// How a whole archive is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WholeCodec {
    Gzip,
    Zstd,
}

/// A file's place inside a tar archive.
#[derive(Clone, Copy, Debug)]
struct Located {
    offset: u64,
    size: u64,
}

/// The names of a tar archive: regular files and links, by cleaned name.
#[derive(Debug, Default)]
pub(crate) struct Index {
    files: HashMap<String, Located>,
    links: HashMap<String, String>,
}

impl Index {
    fn add(&mut self, entry: &tarfmt::Entry) {
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

/// An opened input.
#[derive(Debug)]
pub(crate) enum Container {
    /// An image layout directory (OCI, or an extracted docker-save).
    Dir { root: PathBuf },
    /// A tar file; entries are read by seeking.
    Tar { path: PathBuf, index: Index },
    /// A gzip- or zstd-compressed tar: no seeking, every read is a pass over the stream.
    Stream {
        path: PathBuf,
        codec: WholeCodec,
        index: Index,
        kept: HashMap<String, Vec<u8>>,
    },
}

impl Container {
    /// Opens `path`: indexes a tar by walking its headers (seeking past data), or streams
    /// a compressed tar once to index it and keep its small entries.
    pub(crate) fn open(path: &Path) -> Result<Container> {
        let meta = std::fs::metadata(path).map_err(|e| ScanError::io("open", path, e))?;
        if meta.is_dir() {
            if !path.join("manifest.json").is_file() && !path.join("index.json").is_file() {
                return Err(ScanError::NotAnArchive {
                    path: path.into(),
                    reason: "a directory without manifest.json or index.json".into(),
                });
            }
            return Ok(Container::Dir { root: path.into() });
        }
        let mut file = File::open(path).map_err(|e| ScanError::io("open", path, e))?;
        let mut magic = [0u8; 6];
        let got = read_prefix(&mut file, &mut magic).map_err(|e| ScanError::io("read", path, e))?;
        let magic = magic.get(..got).unwrap_or_default();
        if magic.is_empty() {
            return Err(ScanError::NotAnArchive {
                path: path.into(),
                reason: "the file is empty".into(),
            });
        }
        let codec = match crate::layer::Format::sniff(magic) {
            crate::layer::Format::Plain => None,
            crate::layer::Format::Gzip => Some(WholeCodec::Gzip),
            crate::layer::Format::Zstd => Some(WholeCodec::Zstd),
            crate::layer::Format::Unsupported(name) => {
                return Err(ScanError::NotAnArchive {
                    path: path.into(),
                    reason: format!("{name} compression is not supported"),
                });
            }
        };
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ScanError::io("read", path, e))?;
        match codec {
            None => {
                let mut index = Index::default();
                let mut reader = TarReader::new(Seeking::new(file, meta.len()));
                walk(path, &mut reader, |entry, _| {
                    index.add(entry);
                    Ok(ControlFlow::Continue(()))
                })?;
                Ok(Container::Tar {
                    path: path.into(),
                    index,
                })
            }
            Some(codec) => {
                let mut index = Index::default();
                let mut kept = HashMap::new();
                let mut budget = KEEP_BUDGET;
                let mut reader = TarReader::new(Streaming(decoder(file, codec, path)?));
                walk(path, &mut reader, |entry, data| {
                    index.add(entry);
                    let name = tarfmt::clean_path(&entry.path);
                    if let (Some(name), Kind::File) = (name, entry.kind)
                        && entry.size <= KEEP_SMALL
                        && entry.size <= budget
                        && is_metadata_like(&name)
                    {
                        let mut buf = Vec::new();
                        data.read_to_end(&mut buf)?;
                        budget -= entry.size;
                        kept.insert(name, buf);
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
                // Kept entries shadowed by a later link are not what the name means.
                kept.retain(|name, _| index.files.contains_key(name));
                Ok(Container::Stream {
                    path: path.into(),
                    codec,
                    index,
                    kept,
                })
            }
        }
    }

    /// The input's path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Container::Dir { root } => root,
            Container::Tar { path, .. } | Container::Stream { path, .. } => path,
        }
    }

    /// True when entries can only be read by streaming the whole archive again.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Container::Stream { .. })
    }

    /// True when `name` (a cleaned name) exists as a file, through links.
    pub(crate) fn exists(&self, name: &str) -> bool {
        match self {
            Container::Dir { root } => root.join(name).is_file(),
            Container::Tar { index, .. } | Container::Stream { index, .. } => {
                index.resolve(name).is_some()
            }
        }
    }

    /// The stored size of `name`, when it exists.
    pub(crate) fn size(&self, name: &str) -> Option<u64> {
        match self {
            Container::Dir { root } => std::fs::metadata(root.join(name)).ok().map(|m| m.len()),
            Container::Tar { index, .. } | Container::Stream { index, .. } => {
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
            Container::Dir { .. } | Container::Tar { .. } => {
                let (mut reader, size) = self.open_entry(name, what)?;
                let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                reader
                    .read_to_end(&mut buf)
                    .map_err(|e| ScanError::io("read", self.path(), e))?;
                Ok(buf)
            }
            Container::Stream { index, kept, .. } => {
                let (real, _) = index.resolve(name).ok_or_else(missing)?;
                if let Some(data) = kept.get(&real) {
                    return Ok(data.clone());
                }
                let mut found = None;
                self.stream_files(|entry_name, data| {
                    if entry_name == real {
                        let mut buf = Vec::new();
                        data.read_to_end(&mut buf)?;
                        found = Some(buf);
                        return Ok(ControlFlow::Break(()));
                    }
                    Ok(ControlFlow::Continue(()))
                })?;
                found.ok_or_else(missing)
            }
        }
    }

    /// Opens one file for streaming (not for [`Container::Stream`]; use
    /// [`Container::stream_files`]). Returns the reader and the stored size.
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
            Container::Dir { root } => {
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
            Container::Tar { path, index } => {
                let (_, loc) = index.resolve(name).ok_or_else(missing)?;
                let mut file = File::open(path).map_err(|e| ScanError::io("open", path, e))?;
                file.seek(SeekFrom::Start(loc.offset))
                    .map_err(|e| ScanError::io("read", path, e))?;
                Ok((Box::new(file.take(loc.size)), loc.size))
            }
            Container::Stream { .. } => Err(ScanError::Internal(
                "a compressed archive cannot be read at random".into(),
            )),
        }
    }

    /// Streams a compressed archive once, handing every regular file (cleaned name and
    /// data) to `visit` until it breaks. Only for [`Container::Stream`].
    pub(crate) fn stream_files<F>(&self, mut visit: F) -> Result<()>
    where
        F: FnMut(&str, &mut dyn Read) -> io::Result<ControlFlow<()>>,
    {
        let Container::Stream { path, codec, .. } = self else {
            return Err(ScanError::Internal("not a streamed archive".into()));
        };
        let file = File::open(path).map_err(|e| ScanError::io("open", path, e))?;
        let mut reader = TarReader::new(Streaming(decoder(file, *codec, path)?));
        walk(path, &mut reader, |entry, data| {
            if entry.kind != Kind::File {
                return Ok(ControlFlow::Continue(()));
            }
            match tarfmt::clean_path(&entry.path) {
                Some(name) => visit(&name, data),
                None => Ok(ControlFlow::Continue(())),
            }
        })
    }

    /// Resolves `name` through the archive's links to the name of a regular file.
    pub(crate) fn resolve(&self, name: &str) -> Option<String> {
        match self {
            Container::Dir { .. } => Some(name.to_owned()),
            Container::Tar { index, .. } | Container::Stream { index, .. } => {
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

fn decoder(file: File, codec: WholeCodec, path: &Path) -> Result<Box<dyn Read + Send>> {
    let buffered = BufReader::with_capacity(128 << 10, file);
    Ok(match codec {
        WholeCodec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        WholeCodec::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| ScanError::io("read", path, e))?,
        ),
    })
}

/// Walks every entry of an archive, mapping tar errors to scan errors about `path`.
fn walk<R, F>(path: &Path, reader: &mut TarReader<R>, mut visit: F) -> Result<()>
where
    R: tarfmt::Skip,
    F: FnMut(&tarfmt::Entry, &mut dyn Read) -> io::Result<ControlFlow<()>>,
{
    let mut count = 0usize;
    loop {
        let entry = match reader.next_entry() {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => return Err(archive_error(path, e, count == 0)),
        };
        count += 1;
        match visit(&entry, &mut reader.data()) {
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

/// Reads up to `buf.len()` bytes from the start of a file.
fn read_prefix(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(buf.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (tempfile::TempDir, PathBuf) {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let bytes = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, target: &str) {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(0);
        b.append_link(&mut h, name, target).unwrap();
    }

    #[test]
    fn links_inside_archives_resolve() {
        // Older `docker save` stores a repeated layer as a symlink to its first copy.
        let (_dir, path) = archive(|b| {
            let mut h = tar::Header::new_ustar();
            h.set_size(5);
            b.append_data(&mut h, "a/layer.tar", &b"layer"[..]).unwrap();
            link(b, tar::EntryType::Symlink, "b/layer.tar", "../a/layer.tar");
            link(b, tar::EntryType::Link, "c/layer.tar", "b/layer.tar");
            link(b, tar::EntryType::Symlink, "loop1", "loop2");
            link(b, tar::EntryType::Symlink, "loop2", "loop1");
            link(b, tar::EntryType::Symlink, "escape", "../../etc/passwd");
        });
        let c = Container::open(&path).unwrap();
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
