//! A deterministic tar writer: ustar headers, root owner, fixed time, GNU long names.
//! It writes layers and archives in memory, and streams the benchmark's large ones.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{self, Read, Write},
};

use crate::MTIME;

/// What a written entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    File,
    Executable,
    Dir,
    Symlink,
    Hardlink,
}

/// Writes a tar archive to `W`. Names are written as given (tests build archives with
/// any layout, including broken ones); names and link targets longer than 100 bytes get a
/// GNU long-name entry first.
pub struct TarWriter<W: Write> {
    out: W,
    /// Directories [`TarWriter::file_in_dirs`] has written.
    dirs: BTreeSet<String>,
}

impl TarWriter<Vec<u8>> {
    /// A writer into memory.
    pub fn in_memory() -> Self {
        TarWriter::new(Vec::new())
    }

    /// The archive with its end-of-archive marker.
    pub fn into_bytes(self) -> Vec<u8> {
        self.finish().expect("writing to a Vec cannot fail")
    }
}

impl<W: Write> TarWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        TarWriter {
            out,
            dirs: BTreeSet::new(),
        }
    }

    /// Appends a regular file (mode 0644).
    pub fn file(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.entry(name, EntryKind::File, data.len() as u64, data, "")
    }

    /// Appends an executable regular file (mode 0755).
    pub fn executable(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.entry(name, EntryKind::Executable, data.len() as u64, data, "")
    }

    /// Appends a regular file of `size` bytes read from `data`, which must hold that many.
    pub fn file_from(&mut self, name: &str, size: u64, data: impl Read) -> io::Result<()> {
        self.entry(name, EntryKind::File, size, data, "")
    }

    /// Appends a regular file after each of its parent directories not written this way
    /// before (empty and `..` components get none).
    pub fn file_in_dirs(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.parents(name)?;
        self.file(name, data)
    }

    /// Appends an executable regular file (mode 0755) after each of its parent
    /// directories not written this way before, as [`TarWriter::file_in_dirs`] does.
    pub fn executable_in_dirs(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        self.parents(name)?;
        self.executable(name, data)
    }

    /// Writes the parent directories of `name` not written by the `*_in_dirs` methods
    /// before.
    fn parents(&mut self, name: &str) -> io::Result<()> {
        let mut parent = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            parent.push_str(part);
            parent.push('/');
            if !part.is_empty() && part != &".." && self.dirs.insert(parent.clone()) {
                self.dir(&parent)?;
            }
        }
        Ok(())
    }

    /// Appends a directory (mode 0755); `name` should end in `/`.
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, EntryKind::Dir, 0, io::empty(), "")
    }

    /// Appends a symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, EntryKind::Symlink, 0, io::empty(), target)
    }

    /// Appends a hard link to the earlier entry `target`.
    pub fn hardlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.entry(name, EntryKind::Hardlink, 0, io::empty(), target)
    }

    /// Writes the end-of-archive marker and gives back the writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn entry(
        &mut self,
        name: &str,
        kind: EntryKind,
        size: u64,
        data: impl Read,
        link: &str,
    ) -> io::Result<()> {
        for (long, typeflag) in [(name, b'L'), (link, b'K')] {
            if long.len() > 100 {
                let mut long = long.as_bytes().to_vec();
                long.push(0);
                self.header("././@LongLink", typeflag, long.len() as u64, 0o644, "")?;
                self.data(long.len() as u64, &long[..])?;
            }
        }
        let (typeflag, mode) = match kind {
            EntryKind::File => (b'0', 0o644),
            EntryKind::Executable => (b'0', 0o755),
            EntryKind::Dir => (b'5', 0o755),
            EntryKind::Symlink => (b'2', 0o777),
            EntryKind::Hardlink => (b'1', 0o644),
        };
        self.header(name, typeflag, size, mode, link)?;
        self.data(size, data)
    }

    /// Copies `size` bytes of `data` and pads them to whole blocks.
    fn data(&mut self, size: u64, data: impl Read) -> io::Result<()> {
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied < size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("entry data ends after {copied} of {size} bytes"),
            ));
        }
        let pad = (512 - size % 512) % 512;
        self.out.write_all(&[0u8; 512][..pad as usize])
    }

    fn header(
        &mut self,
        name: &str,
        typeflag: u8,
        size: u64,
        mode: u32,
        link: &str,
    ) -> io::Result<()> {
        let mut h = [0u8; 512];
        put(&mut h[0..100], name.as_bytes());
        put(&mut h[100..108], format!("{mode:07o}\0").as_bytes());
        put(&mut h[108..116], b"0000000\0");
        put(&mut h[116..124], b"0000000\0");
        put(&mut h[124..136], format!("{size:011o}\0").as_bytes());
        put(&mut h[136..148], format!("{MTIME:011o}\0").as_bytes());
        h[148..156].fill(b' ');
        h[156] = typeflag;
        put(&mut h[157..257], link.as_bytes());
        put(&mut h[257..263], b"ustar\0");
        put(&mut h[263..265], b"00");
        put(&mut h[265..297], b"root");
        put(&mut h[297..329], b"root");
        put(&mut h[329..337], b"0000000\0");
        put(&mut h[337..345], b"0000000\0");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes());
        self.out.write_all(&h)
    }
}

/// Copies as much of `src` as fits.
fn put(field: &mut [u8], src: &[u8]) {
    let n = field.len().min(src.len());
    field[..n].copy_from_slice(&src[..n]);
}

/// A tar archive of regular files, in name order, each after its parent directories.
/// Names are written as given, so tests can build archives with any layout, including
/// broken ones.
pub fn tar_of(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut w = TarWriter::in_memory();
    for (name, data) in files {
        w.file_in_dirs(name, data)
            .expect("writing to a Vec cannot fail");
    }
    w.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_and_streamed_data() {
        let long = format!("{}/f", "d".repeat(120));
        let mut w = TarWriter::in_memory();
        w.file(&long, b"abc").unwrap();
        w.file_from("streamed", 5, &b"hello, world"[..]).unwrap();
        let tar = w.into_bytes();
        // The long-name header and its data, then header and data of each file, then the
        // end marker.
        assert_eq!(tar.len(), 512 * 6 + 1024);
        assert_eq!(tar[156], b'L');
        let err = TarWriter::in_memory()
            .file_from("short", 10, &b"abc"[..])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
