//! A small tar reader whose buffering is bounded, for archives and layers alike.
//!
//! It exists instead of the `tar` crate's reader for two reasons: it skips entry data with
//! [`Skip`] (a seek on archive files, so indexing a multi-gigabyte archive reads only its
//! headers), and it caps what it buffers (GNU long names at 64 KiB, PAX headers at 1 MiB),
//! so a hostile layer cannot make it allocate in proportion to its size.

use std::{
    fs::File,
    io::{self, BufReader, Read},
};

use crate::codec::read_prefix;

/// Tar block size.
const BLOCK: u64 = 512;
/// Largest GNU long name or long link name accepted.
const MAX_LONG_NAME: u64 = 64 << 10;
/// Largest PAX extended header accepted.
const MAX_PAX: u64 = 1 << 20;

/// A reader that can move forward without handing the bytes to anyone.
pub(crate) trait Skip: Read {
    /// Moves `n` bytes forward. Fails with `UnexpectedEof` when the input ends first.
    fn skip(&mut self, n: u64) -> io::Result<()>;
}

/// Skips by reading (and discarding), so that hashing readers below still see every byte.
pub(crate) struct Streaming<R>(pub(crate) R);

impl<R> Streaming<R> {
    /// Gives back the reader.
    pub(crate) fn into_inner(self) -> R {
        self.0
    }
}

impl<R: Read> Read for Streaming<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Skip for Streaming<R> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.0).take(n), &mut io::sink())?;
        if copied < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// Skips by seeking, within a file of known length.
pub(crate) struct Seeking {
    file: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Seeking {
    /// Wraps a file positioned at its start.
    pub(crate) fn new(file: File, len: u64) -> Self {
        Seeking {
            // Small buffer: mostly single headers are read between seeks.
            file: BufReader::with_capacity(8 << 10, file),
            pos: 0,
            len,
        }
    }
}

impl Read for Seeking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Skip for Seeking {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let target = self.pos.checked_add(n).filter(|t| *t <= self.len);
        let Some(target) = target else {
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        let delta = i64::try_from(n).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        self.file.seek_relative(delta)?;
        self.pos = target;
        Ok(())
    }
}

/// What a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (types `0`, NUL and `7`).
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    Hardlink,
    /// Anything else (devices, FIFOs, sparse files, unknown types).
    Other,
}

/// One entry's header.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The name as stored (long-name and PAX overrides applied), not yet cleaned.
    pub(crate) path: String,
    /// What it is.
    pub(crate) kind: Kind,
    /// Size of its data in bytes.
    pub(crate) size: u64,
    /// Permission bits (`0o755` for an executable); 0 when the field is unreadable.
    pub(crate) mode: u32,
    /// Link target for links, empty otherwise.
    pub(crate) link: String,
    /// Offset of its data from the start of the stream.
    pub(crate) offset: u64,
}

/// Why a tar stream could not be read.
#[derive(Debug)]
pub(crate) enum TarError {
    /// The underlying reader failed.
    Io(io::Error),
    /// The stream ends inside a header or an entry's data.
    Truncated(String),
    /// A header is malformed.
    Invalid(String),
}

impl TarError {
    pub(crate) fn describe(&self) -> String {
        match self {
            TarError::Io(e) => e.to_string(),
            TarError::Truncated(s) | TarError::Invalid(s) => s.clone(),
        }
    }
}

fn eof_or_io(e: io::Error, what: impl FnOnce() -> String) -> TarError {
    if e.kind() == io::ErrorKind::UnexpectedEof && e.get_ref().is_none() {
        TarError::Truncated(what())
    } else {
        TarError::Io(e)
    }
}

/// Reads a tar stream entry by entry.
pub(crate) struct TarReader<R> {
    inner: R,
    /// Bytes consumed from `inner` so far.
    pos: u64,
    /// Unread data bytes of the current entry.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    /// Name of the current entry, for messages.
    current: String,
}

impl<R: Skip> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            pos: 0,
            remaining: 0,
            padding: 0,
            current: String::new(),
        }
    }

    /// Gives back the reader, positioned after the last header or data read.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }

    /// Moves to the next entry, skipping what is left of the current one. `Ok(None)` at
    /// the end-of-archive marker or at a clean end of the input.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, TarError> {
        self.skip_rest()?;
        let mut ext = Extended::default();
        loop {
            let mut block = [0u8; BLOCK as usize];
            let got = read_prefix(&mut self.inner, &mut block).map_err(TarError::Io)?;
            self.pos += got as u64;
            if got == 0 {
                if ext.pending {
                    return Err(TarError::Truncated(format!(
                        "ends after an extended header at offset {}",
                        self.pos
                    )));
                }
                return Ok(None);
            }
            if got < block.len() {
                return Err(TarError::Truncated(format!(
                    "ends inside a header at offset {}",
                    self.pos - got as u64
                )));
            }
            if block.iter().all(|b| *b == 0) {
                return Ok(None);
            }
            let header_at = self.pos - BLOCK;
            check_checksum(&block)
                .map_err(|reason| TarError::Invalid(format!("{reason} at offset {header_at}")))?;
            let size = parse_number(&block[124..136]).ok_or_else(|| {
                TarError::Invalid(format!("bad size field at offset {header_at}"))
            })?;
            if !self.read_extension(block[156], size, &mut ext)? {
                return self.entry(&block, size, ext).map(Some);
            }
        }
    }

    /// Reads an extended header's data (`L`, `K`, `x` or `g`, of `size` bytes) into
    /// `ext`. False for any other type.
    fn read_extension(
        &mut self,
        typeflag: u8,
        size: u64,
        ext: &mut Extended,
    ) -> Result<bool, TarError> {
        match typeflag {
            b'L' | b'K' => {
                let data = self.read_meta(size, MAX_LONG_NAME, "long name")?;
                let name = String::from_utf8_lossy(until_nul(&data)).into_owned();
                if typeflag == b'L' {
                    ext.long_name = Some(name);
                } else {
                    ext.long_link = Some(name);
                }
                ext.pending = true;
            }
            b'x' => {
                let data = self.read_meta(size, MAX_PAX, "pax header")?;
                ext.pax.parse(&data);
                ext.pending = true;
            }
            b'g' => self.skip_bytes(padded(size)?, "global pax header")?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The entry an ordinary header `block` starts, with the extended headers before it
    /// applied; its data is next.
    fn entry(
        &mut self,
        block: &[u8; BLOCK as usize],
        size: u64,
        mut ext: Extended,
    ) -> Result<Entry, TarError> {
        let typeflag = block[156];
        let kind = match typeflag {
            b'0' | 0 | b'7' => Kind::File,
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink,
            b'1' => Kind::Hardlink,
            _ => Kind::Other,
        };
        // Like Go's archive/tar: header-only types carry no data whatever the size
        // field says.
        let header_only = matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6');
        let size = if header_only {
            0
        } else {
            ext.pax.size.unwrap_or(size)
        };
        let path = ext
            .long_name
            .or(ext.pax.path.take())
            .unwrap_or_else(|| header_name(block));
        let link = ext
            .long_link
            .or(ext.pax.link.take())
            .unwrap_or_else(|| String::from_utf8_lossy(until_nul(&block[157..257])).into_owned());
        self.remaining = size;
        self.padding = padded(size)? - size;
        self.current.clone_from(&path);
        let mode = parse_number(&block[100..108])
            .and_then(|m| u32::try_from(m & 0o7777).ok())
            .unwrap_or(0);
        Ok(Entry {
            path,
            kind,
            size,
            mode,
            link,
            offset: self.pos,
        })
    }

    /// Reads the current entry's data.
    pub(crate) fn data(&mut self) -> Data<'_, R> {
        Data { reader: self }
    }

    fn skip_rest(&mut self) -> Result<(), TarError> {
        let n = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        if n > 0 {
            let current = std::mem::take(&mut self.current);
            self.skip_bytes(n, &current)?;
        }
        Ok(())
    }

    fn skip_bytes(&mut self, n: u64, what: &str) -> Result<(), TarError> {
        self.inner
            .skip(n)
            .map_err(|e| eof_or_io(e, || format!("ends inside the data of {what:?}")))?;
        self.pos += n;
        Ok(())
    }

    fn read_meta(&mut self, size: u64, max: u64, what: &str) -> Result<Vec<u8>, TarError> {
        if size > max {
            return Err(TarError::Invalid(format!(
                "{what} of {size} bytes at offset {} exceeds {max} bytes",
                self.pos
            )));
        }
        let len =
            usize::try_from(size).map_err(|_| TarError::Invalid(format!("{what} too large")))?;
        let mut data = vec![0u8; len];
        self.inner
            .read_exact(&mut data)
            .map_err(|e| eof_or_io(e, || format!("ends inside a {what}")))?;
        self.pos += size;
        self.skip_bytes(padded(size)? - size, what)?;
        Ok(data)
    }
}

/// The data of the current entry; ends where the entry ends.
pub(crate) struct Data<'a, R> {
    reader: &'a mut TarReader<R>,
}

impl<R: Skip> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(r.remaining).map_or(buf.len(), |rem| rem.min(buf.len()));
        let n = r.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("tar stream ends inside the data of {:?}", r.current),
            ));
        }
        r.remaining -= n as u64;
        r.pos += n as u64;
        Ok(n)
    }
}

/// What the extended headers before an entry's own header say.
#[derive(Default)]
struct Extended {
    /// From a GNU `L` header.
    long_name: Option<String>,
    /// From a GNU `K` header.
    long_link: Option<String>,
    pax: Pax,
    /// An `L`, `K` or `x` header was read: an entry header must follow.
    pending: bool,
}

/// Overrides from a PAX extended header.
#[derive(Default)]
struct Pax {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

impl Pax {
    /// Parses `"<len> <key>=<value>\n"` records; malformed records end the parse.
    fn parse(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let Some(space) = data.iter().position(|b| *b == b' ') else {
                return;
            };
            let Some(len) = std::str::from_utf8(data.get(..space).unwrap_or_default())
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                return;
            };
            let Some(record) = data.get(space + 1..len) else {
                return;
            };
            let record = record.strip_suffix(b"\n").unwrap_or(record);
            if let Some(eq) = record.iter().position(|b| *b == b'=') {
                let (key, value) = record.split_at(eq);
                let value =
                    String::from_utf8_lossy(value.get(1..).unwrap_or_default()).into_owned();
                match key {
                    b"path" => self.path = Some(value),
                    b"linkpath" => self.link = Some(value),
                    b"size" => self.size = value.parse().ok(),
                    _ => {}
                }
            }
            data = data.get(len..).unwrap_or_default();
        }
    }
}

/// Rounds up to whole blocks.
fn padded(size: u64) -> Result<u64, TarError> {
    size.checked_add(BLOCK - 1)
        .map(|s| s & !(BLOCK - 1))
        .ok_or_else(|| TarError::Invalid(format!("entry size {size} overflows")))
}

fn until_nul(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    &field[..end]
}

/// The name in a ustar/GNU header: POSIX ustar joins the 155-byte prefix.
fn header_name(block: &[u8; BLOCK as usize]) -> String {
    let name = until_nul(&block[..100]);
    let posix_ustar = &block[257..263] == b"ustar\0";
    let prefix = if posix_ustar {
        until_nul(&block[345..500])
    } else {
        &[]
    };
    if prefix.is_empty() {
        String::from_utf8_lossy(name).into_owned()
    } else {
        let mut joined = prefix.to_vec();
        joined.push(b'/');
        joined.extend_from_slice(name);
        String::from_utf8_lossy(&joined).into_owned()
    }
}

/// Parses an octal field, or a GNU base-256 one (high bit set). `None` when malformed.
fn parse_number(field: &[u8]) -> Option<u64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        if first & 0x40 != 0 {
            return None; // negative
        }
        let mut value: u64 = u64::from(first & 0x3f);
        for b in field.get(1..)? {
            value = value.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(value);
    }
    let mut value: u64 = 0;
    let mut digits = field
        .iter()
        .skip_while(|b| **b == b' ' || **b == 0)
        .peekable();
    if digits.peek().is_none() {
        return Some(0);
    }
    for b in digits {
        match b {
            b'0'..=b'7' => value = value.checked_mul(8)?.checked_add(u64::from(b - b'0'))?,
            b' ' | 0 => break,
            _ => return None,
        }
    }
    Some(value)
}

fn check_checksum(block: &[u8; BLOCK as usize]) -> Result<(), &'static str> {
    let stored = parse_number(&block[148..156]).ok_or("bad header checksum field")?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err("header checksum mismatch")
    }
}

/// Cleans an entry name: drops `./` and empty components and trailing slashes. Returns
/// `None` for names that must be ignored: absolute, containing `..`, or empty.
pub(crate) fn clean_path(raw: &str) -> Option<String> {
    if raw.starts_with('/') {
        return None;
    }
    let mut out = String::with_capacity(raw.len());
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(part);
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: Vec<u8>) -> TarReader<Streaming<io::Cursor<Vec<u8>>>> {
        TarReader::new(Streaming(io::Cursor::new(bytes)))
    }

    fn entries(bytes: Vec<u8>) -> Result<Vec<(Entry, Vec<u8>)>, TarError> {
        let mut r = reader(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut data = Vec::new();
            r.data().read_to_end(&mut data).map_err(TarError::Io)?;
            out.push((e, data));
        }
        Ok(out)
    }

    fn tar_crate_archive(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file_header(size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h
    }

    #[test]
    fn reads_gnu_long_names_ustar_and_links() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let bytes = tar_crate_archive(|b| {
            b.append_data(&mut file_header(5), &long, &b"hello"[..])
                .unwrap();
            b.append_data(&mut file_header(3), "./etc/os-release", &b"abc"[..])
                .unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, "etc/link", "../usr/lib/os-release")
                .unwrap();
        });
        let got = entries(bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0.path, long);
        assert_eq!(got[0].1, b"hello");
        assert_eq!(got[1].0.path, "etc/os-release");
        assert_eq!(got[1].0.kind, Kind::File);
        assert_eq!(got[2].0.kind, Kind::Symlink);
        assert_eq!(got[2].0.link, "../usr/lib/os-release");
    }

    #[test]
    fn reads_pax_overrides() {
        // A PAX record overriding the path, as Go's archive/tar writes for long names.
        let path = format!("{}/x", "p".repeat(200));
        let record = format!("path={path}\n");
        let len = record.len() + 4; // "NNN " prefix, three digits
        let pax = format!("{len} {record}");
        assert_eq!(pax.len(), len);
        let bytes = tar_crate_archive(|b| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::XHeader);
            h.set_size(pax.len() as u64);
            b.append_data(&mut h, "PaxHeader", pax.as_bytes()).unwrap();
            b.append_data(&mut file_header(2), "short", &b"hi"[..])
                .unwrap();
        });
        let got = entries(bytes).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.path, path);
        assert_eq!(got[0].1, b"hi");
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let garbage = vec![0x41u8; 2048];
        assert!(matches!(entries(garbage), Err(TarError::Invalid(_))));

        let bytes = tar_crate_archive(|b| {
            b.append_data(&mut file_header(1000), "big", &[7u8; 1000][..])
                .unwrap();
        });
        let cut = bytes[..700].to_vec();
        let err = entries(cut).unwrap_err();
        assert!(matches!(err, TarError::Io(ref e) if e.kind() == io::ErrorKind::UnexpectedEof));
        let mut r = reader(bytes[..700].to_vec());
        r.next_entry().unwrap().unwrap();
        assert!(matches!(r.next_entry(), Err(TarError::Truncated(_))));
        let header_cut = bytes[..100].to_vec();
        assert!(matches!(entries(header_cut), Err(TarError::Truncated(_))));
    }

    #[test]
    fn caps_long_names() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(MAX_LONG_NAME + 1);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.resize(bytes.len() + 4096, b'a');
        let err = entries(bytes).unwrap_err();
        assert!(err.describe().contains("exceeds"), "{}", err.describe());
    }

    #[test]
    fn seeking_skips_and_detects_short_files() {
        let bytes = tar_crate_archive(|b| {
            b.append_data(&mut file_header(3000), "a", &[1u8; 3000][..])
                .unwrap();
            b.append_data(&mut file_header(2), "b", &b"ok"[..]).unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, &bytes).unwrap();
        let file = File::open(&path).unwrap();
        let mut r = TarReader::new(Seeking::new(file, bytes.len() as u64));
        assert_eq!(r.next_entry().unwrap().unwrap().path, "a");
        let b = r.next_entry().unwrap().unwrap();
        assert_eq!((b.path.as_str(), b.offset), ("b", 512 + 3072 + 512));
        assert!(r.next_entry().unwrap().is_none());

        std::fs::write(&path, &bytes[..2000]).unwrap();
        let file = File::open(&path).unwrap();
        let mut r = TarReader::new(Seeking::new(file, 2000));
        r.next_entry().unwrap().unwrap();
        assert!(matches!(r.next_entry(), Err(TarError::Truncated(_))));
    }

    #[test]
    fn numbers_and_paths() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b"   12 \0"), Some(0o12));
        assert_eq!(parse_number(b"\0\0\0"), Some(0));
        assert_eq!(parse_number(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_number(b"9"), None);
        for (raw, want) in [
            ("./etc/os-release", Some("etc/os-release")),
            ("etc//apk/./db/", Some("etc/apk/db")),
            ("/etc/passwd", None),
            ("a/../../etc", None),
            ("..", None),
            ("./", None),
        ] {
            assert_eq!(clean_path(raw).as_deref(), want, "{raw}");
        }
    }
}
