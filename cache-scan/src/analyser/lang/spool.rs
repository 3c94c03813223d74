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
pub(crate) fn to_temp<R: Read>(data: &mut R, cap: u64) -> Result<File, Skip> {
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

/// An executable of `size` bytes copied to a temporary file when it starts with the ELF
/// magic; `None` (and nothing more read) for any other file.
pub(crate) fn executable<R: Read>(data: &mut R, size: u64) -> Result<Option<File>, Skip> {
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
    let mut file = to_temp(&mut (&magic[..]).chain(data), super::MAX_EXECUTABLE)?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the temporary file: {e}"))?;
    Ok(Some(file))
}
