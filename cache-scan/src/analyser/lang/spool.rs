//! Reading one file from the layer stream: into memory up to a cap, or into an unnamed
//! temporary file for random access; failures of the stream itself kept apart from the
//! file's own problems.

use std::{
    fs::File,
    io::{self, Read, Seek, SeekFrom, Write},
};

use super::Skip;

/// The layer stream of one file, remembering the first error the stream itself gave, so
/// that a layer that fails to read is an error, not a skipped file.
pub(crate) struct Tracked<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R: Read> Tracked<R> {
    pub(crate) fn new(inner: R) -> Self {
        Tracked { inner, error: None }
    }

    /// The stream's error, if reading it failed.
    pub(crate) fn check(self) -> io::Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("the layer stream failed"));
        }
        match self.inner.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let message = e.to_string();
                self.error = Some(e);
                Err(io::Error::other(message))
            }
        }
    }
}

/// Reads all of `data`, at most `cap` bytes.
pub(crate) fn read_all<R: Read>(data: &mut R, cap: u64) -> Result<Vec<u8>, Skip> {
    let mut out = Vec::new();
    data.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!("it is over the {cap}-byte limit"));
    }
    Ok(out)
}

/// Copies `data`, at most `cap` bytes, into an unnamed temporary file (removed when
/// closed) and rewinds it.
fn to_temp<R: Read>(data: &mut R, cap: u64) -> Result<File, Skip> {
    let mut file =
        tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
    let copied = io::copy(&mut data.take(cap + 1), &mut file)
        .map_err(|e| format!("cannot copy it to a temporary file: {e}"))?;
    if copied > cap {
        return Err(format!("it is over the {cap}-byte limit"));
    }
    file.flush()
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .map_err(|e| format!("cannot read the temporary file: {e}"))?;
    Ok(file)
}

/// Executables and Java archives up to this size are read into memory; larger ones are
/// copied to a temporary file. Writing through the page cache cost about 1 ms of system time per
/// MB here (an image of 100 MB, 40 % of it in ELF executables of 1–3 MB: 30 ms more than
/// the same files without an execute bit); a copy in memory costs a tenth of that. At
/// most one such buffer per layer being read, so two cores hold at most 16 MiB.
pub(crate) const IN_MEMORY: u64 = 8 << 20;

/// A file read for random access: in memory, or in an unnamed temporary file.
pub(crate) enum Spooled {
    /// The bytes, in memory.
    Memory(io::Cursor<Vec<u8>>),
    /// An unnamed temporary file, removed when closed.
    File(File),
}

impl Read for Spooled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Spooled::Memory(c) => c.read(buf),
            Spooled::File(f) => f.read(buf),
        }
    }
}

impl Seek for Spooled {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            Spooled::Memory(c) => c.seek(pos),
            Spooled::File(f) => f.seek(pos),
        }
    }
}

/// An executable of `size` bytes, read for random access (in memory up to
/// [`IN_MEMORY`], else in a temporary file) when it starts with the ELF magic; `None`
/// (and nothing more read) for any other file.
pub(crate) fn executable<R: Read>(data: &mut R, size: u64) -> Result<Option<Spooled>, Skip> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match data.read(&mut magic[got..]) {
            Ok(0) => return Ok(None),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read it: {e}")),
        }
    }
    if magic != *b"\x7fELF" {
        return Ok(None);
    }
    if size > super::MAX_EXECUTABLE {
        return Err(format!(
            "{size} bytes is over the {}-byte limit",
            super::MAX_EXECUTABLE
        ));
    }
    random_access(&mut (&magic[..]).chain(data), size, super::MAX_EXECUTABLE).map(Some)
}

/// All of `data`, a file of `size` bytes, for random access: in memory up to
/// [`IN_MEMORY`], else in a temporary file of at most `cap` bytes.
pub(crate) fn random_access<R: Read>(data: &mut R, size: u64, cap: u64) -> Result<Spooled, Skip> {
    if size > IN_MEMORY {
        return to_temp(data, cap).map(Spooled::File);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    data.take(IN_MEMORY + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > IN_MEMORY {
        // More bytes than the tar header said: only a broken stream does this, and the
        // layer reader reports it.
        return Err(format!("it is over the {IN_MEMORY}-byte limit"));
    }
    Ok(Spooled::Memory(io::Cursor::new(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_read_in_memory_or_spooled_by_size() {
        let small = b"\x7fELFsmall".to_vec();
        let mut got = executable(&mut &small[..], small.len() as u64)
            .unwrap()
            .unwrap();
        assert!(matches!(got, Spooled::Memory(_)));
        let mut back = Vec::new();
        got.read_to_end(&mut back).unwrap();
        assert_eq!(back, small);

        let mut big = vec![0u8; usize::try_from(IN_MEMORY).unwrap() + 1];
        big[..4].copy_from_slice(b"\x7fELF");
        let mut got = executable(&mut &big[..], big.len() as u64)
            .unwrap()
            .unwrap();
        assert!(matches!(got, Spooled::File(_)));
        got.seek(SeekFrom::End(-1)).unwrap();
        assert_eq!(got.stream_position().unwrap() + 1, big.len() as u64);

        assert!(executable(&mut &b"#!/bin/sh\n"[..], 10).unwrap().is_none());
        assert!(executable(&mut &b"\x7fE"[..], 2).unwrap().is_none());
    }
}
