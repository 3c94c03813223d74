//! A small, bounded zip reader for Java archives: the central directory (zip64 too),
//! and entries read stored or deflated, each within a byte budget, so a zip bomb is an
//! error naming the entry, never unbounded work or memory.

use std::io::{Read, Seek, SeekFrom};

use super::elf::read_at;

/// Most entries read from one archive.
const MAX_ENTRIES: u64 = 500_000;
/// Largest central directory read.
const MAX_DIRECTORY: u64 = 64 << 20;

/// One entry of the central directory.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) name: String,
    method: u16,
    compressed: u64,
    pub(crate) size: u64,
    local: u64,
}

/// An open archive: its entries and its length.
pub(crate) struct Zip {
    pub(crate) entries: Vec<Entry>,
    len: u64,
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 2)
        .map_or(0, |s| u64::from(u16::from_le_bytes([s[0], s[1]])))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |s| {
        u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    })
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

impl Zip {
    /// Reads the central directory of `r`.
    pub(crate) fn open<R: Read + Seek>(r: &mut R) -> Result<Zip, String> {
        let len = r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        let tail_len = len.min(65_557);
        let tail = read_at(r, len, len - tail_len, tail_len)?;
        let eocd = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| tail.get(i..i + 4) == Some(b"PK\x05\x06"))
            .ok_or("not a zip archive (no end of central directory)")?;
        let e = &tail[eocd..];
        let (mut count, mut dir_size, mut dir_at) = (u16_at(e, 10), u32_at(e, 12), u32_at(e, 16));
        if count == 0xffff || dir_size == 0xffff_ffff || dir_at == 0xffff_ffff {
            let loc = eocd.checked_sub(20).ok_or("zip64 locator missing")?;
            let l = &tail[loc..];
            if l.get(..4) != Some(b"PK\x06\x07") {
                return Err("zip64 locator missing".into());
            }
            let rec = read_at(r, len, u64_at(l, 8), 56)?;
            if rec.get(..4) != Some(b"PK\x06\x06") {
                return Err("zip64 end record missing".into());
            }
            (count, dir_size, dir_at) = (u64_at(&rec, 32), u64_at(&rec, 40), u64_at(&rec, 48));
        }
        if count > MAX_ENTRIES || dir_size > MAX_DIRECTORY {
            return Err(format!(
                "{count} entries in a {dir_size}-byte directory is over the limits"
            ));
        }
        let dir = read_at(r, len, dir_at, dir_size)?;
        let mut entries = Vec::new();
        let mut at = 0usize;
        while (entries.len() as u64) < count {
            let h = dir.get(at..at + 46).ok_or("central directory cut short")?;
            if h.get(..4) != Some(b"PK\x01\x02") {
                return Err("bad central directory entry".into());
            }
            let (n, x, c) = (
                u16_at(h, 28) as usize,
                u16_at(h, 30) as usize,
                u16_at(h, 32) as usize,
            );
            let name = dir
                .get(at + 46..at + 46 + n)
                .ok_or("entry name cut short")?;
            let extra = dir
                .get(at + 46 + n..at + 46 + n + x)
                .ok_or("entry extra cut short")?;
            let mut entry = Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                method: u16_at(h, 10) as u16,
                compressed: u32_at(h, 20),
                size: u32_at(h, 24),
                local: u32_at(h, 42),
            };
            zip64_extra(extra, &mut entry);
            entries.push(entry);
            at += 46 + n + x + c;
        }
        Ok(Zip { entries, len })
    }

    /// The bytes of `entry`, at most `cap` of them; more than `cap`, or more than the
    /// entry declares, is an error (a zip bomb or a corrupt archive).
    pub(crate) fn read<R: Read + Seek>(
        &self,
        r: &mut R,
        entry: &Entry,
        cap: u64,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        self.copy(r, entry, cap, &mut out)?;
        Ok(out)
    }

    /// Copies the bytes of `entry` into `w` (see [`Zip::read`]); returns the count.
    pub(crate) fn copy<R: Read + Seek, W: std::io::Write>(
        &self,
        r: &mut R,
        entry: &Entry,
        cap: u64,
        w: &mut W,
    ) -> Result<u64, String> {
        if entry.size > cap {
            return Err(format!(
                "entry {} inflates to {} bytes, over the {cap}-byte limit",
                entry.name, entry.size
            ));
        }
        let local = read_at(r, self.len, entry.local, 30)?;
        if local.get(..4) != Some(b"PK\x03\x04") {
            return Err(format!("entry {}: bad local header", entry.name));
        }
        let data_at = entry.local + 30 + u16_at(&local, 26) + u16_at(&local, 28);
        if data_at
            .checked_add(entry.compressed)
            .is_none_or(|end| end > self.len)
        {
            return Err(format!(
                "entry {} runs past the end of the archive",
                entry.name
            ));
        }
        r.seek(SeekFrom::Start(data_at))
            .map_err(|e| e.to_string())?;
        let raw = r.take(entry.compressed);
        let limit = entry.size + 1;
        let copied = match entry.method {
            0 => std::io::copy(&mut raw.take(limit), w),
            8 => std::io::copy(&mut flate2::read::DeflateDecoder::new(raw).take(limit), w),
            m => return Err(format!("entry {}: compression method {m}", entry.name)),
        }
        .map_err(|e| format!("entry {}: {e}", entry.name))?;
        if copied > entry.size {
            return Err(format!(
                "entry {} inflates past its declared {} bytes (a zip bomb?)",
                entry.name, entry.size
            ));
        }
        Ok(copied)
    }
}

/// Applies a zip64 extended-information field to the sizes and offset that need it.
fn zip64_extra(mut extra: &[u8], e: &mut Entry) {
    while extra.len() >= 4 {
        let (id, n) = (u16_at(extra, 0), u16_at(extra, 2) as usize);
        let body = extra.get(4..4 + n).unwrap_or_default();
        if id == 1 {
            let mut at = 0;
            for field in [&mut e.size, &mut e.compressed, &mut e.local] {
                if *field == 0xffff_ffff {
                    *field = u64_at(body, at);
                    at += 8;
                }
            }
        }
        extra = extra.get(4 + n..).unwrap_or_default();
    }
}
