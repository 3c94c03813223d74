//! How stored bytes are read: compression judged by magic bytes, the decoders, size caps
//! and prefix reads. Archives and layers both read through it; it uses no other module
//! of the crate.

use std::{
    fmt,
    io::{self, BufRead, Read},
};

/// Largest zstd window accepted (2^27 = 128 MiB, zstd's own default decoder limit and
/// the most `zstd` writes without `--long`), so a frame cannot demand more memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Magic bytes read before the format is judged (the longest magic, xz's, is 6).
pub(crate) const MAGIC_LEN: usize = 6;

/// How a stream is compressed, judged by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Plain,
    Gzip,
    Zstd,
    Unsupported(&'static str),
}

impl Format {
    /// Detects the format from magic bytes; anything unrecognised is taken as plain tar
    /// (the tar reader then judges it).
    pub(crate) fn sniff(magic: &[u8]) -> Format {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else if magic.starts_with(b"BZh") {
            Format::Unsupported("bzip2")
        } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Unsupported("xz")
        } else {
            Format::Plain
        }
    }

    /// The format a layer media type declares, if it declares one.
    pub(crate) fn from_media_type(media_type: &str) -> Option<Format> {
        let m = media_type.to_ascii_lowercase();
        if m.ends_with("+gzip") || m.ends_with(".gzip") {
            Some(Format::Gzip)
        } else if m.ends_with("+zstd") || m.ends_with(".zstd") {
            Some(Format::Zstd)
        } else if m.ends_with(".tar") {
            Some(Format::Plain)
        } else {
            None
        }
    }

    /// The format's name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Plain => "tar",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Unsupported(name) => name,
        }
    }
}

/// The decompressor for one stream (for [`Format::Plain`], the stream itself).
pub(crate) enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    /// A decoder of `format` reading from `inner`. Fails for an unsupported format, and
    /// when the zstd decoder cannot be set up.
    pub(crate) fn new(format: Format, inner: R) -> io::Result<Decoder<R>> {
        Ok(match format {
            Format::Plain => Decoder::Plain(inner),
            Format::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(inner))),
            Format::Zstd => {
                let mut d = zstd::stream::read::Decoder::with_buffer(inner)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Decoder::Zstd(d)
            }
            Format::Unsupported(name) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("{name} compression is not supported"),
                ));
            }
        })
    }

    /// Gives back the compressed stream.
    pub(crate) fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
        }
    }
}

/// The error a [`Capped`] reader fails with past its limit.
#[derive(Debug)]
struct TooLarge(u64);

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "decompresses to more than {} bytes", self.0)
    }
}

impl std::error::Error for TooLarge {}

/// The limit `e` reports a [`Capped`] reader having passed, if that is what it is.
pub(crate) fn exceeded(e: &io::Error) -> Option<u64> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<TooLarge>())
        .map(|t| t.0)
}

/// Bytes read through it are counted against a limit; past it, reads fail with an error
/// that [`exceeded`] recognises.
pub(crate) struct Capped<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R> Capped<R> {
    pub(crate) fn new(inner: R, limit: u64) -> Self {
        Capped {
            inner,
            read: 0,
            limit,
        }
    }

    /// Bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.read
    }

    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.limit {
            return Err(io::Error::other(TooLarge(self.limit)));
        }
        Ok(n)
    }
}

/// Reads `reader` to its end, at most `max` bytes; more is an error of kind
/// [`io::ErrorKind::FileTooLarge`] (nothing past `max + 1` bytes is read).
pub(crate) fn read_capped(reader: impl Read, max: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    reader.take(max.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max} bytes"),
        ));
    }
    Ok(buf)
}

/// Reads one line (through its `\n`, which is kept) into `line`, keeping at most `max`
/// bytes of it and reading past the rest; returns the bytes read from `reader` (0 at the
/// end of the stream) and whether the line was cut. Memory stays bounded by `max`
/// whatever the line's length.
pub(crate) fn read_line_capped(
    reader: &mut (impl BufRead + ?Sized),
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, bool)> {
    let (mut read, mut cut) = (0, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read, cut));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (available.get(..=i).unwrap_or(available), true),
            None => (available, false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        cut |= chunk.len() > room;
        let used = chunk.len();
        reader.consume(used);
        read += used;
        if done {
            return Ok((read, cut));
        }
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the stream; returns how many.
pub(crate) fn read_prefix(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(buf.get_mut(got..).unwrap_or_default()) {
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

    #[test]
    fn lines_are_capped() {
        let mut input: &[u8] = b"short\nmuch too long a line\n\nlast";
        let mut line = Vec::new();
        let mut got = Vec::new();
        loop {
            line.clear();
            let (n, cut) = read_line_capped(&mut input, &mut line, 8).unwrap();
            if n == 0 {
                break;
            }
            got.push((String::from_utf8(line.clone()).unwrap(), n, cut));
        }
        let want = [
            ("short\n", 6, false),
            ("much too", 21, true),
            ("\n", 1, false),
            ("last", 4, false),
        ];
        let want: Vec<(String, usize, bool)> = want
            .iter()
            .map(|(s, n, c)| ((*s).to_owned(), *n, *c))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn formats() {
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8]), Format::Gzip);
        assert_eq!(Format::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Format::Zstd);
        assert_eq!(Format::sniff(b"BZh91"), Format::Unsupported("bzip2"));
        assert_eq!(Format::sniff(b"etc/"), Format::Plain);
        assert_eq!(Format::sniff(b""), Format::Plain);
        for (mt, want) in [
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Some(Format::Gzip),
            ),
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Some(Format::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Some(Format::Zstd),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                Some(Format::Plain),
            ),
            ("application/octet-stream", None),
        ] {
            assert_eq!(Format::from_media_type(mt), want, "{mt}");
        }
    }
}
