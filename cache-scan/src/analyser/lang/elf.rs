//! A small, bounded ELF reader: the header, the program headers and the section headers
//! with their names, and reads of a section or of a virtual address range.
//!
//! Every offset and size read from the file is checked against the file's length before
//! use, every count against a limit, and arithmetic saturates or fails, so a hostile file
//! is an error, never a panic or a large allocation.

use std::io::{Read, Seek, SeekFrom};

/// Most program or section headers read.
const MAX_HEADERS: u64 = 1 << 16;
/// Largest section-name table read.
const MAX_NAMES: u64 = 1 << 20;
/// Largest program or section header table read (65,536 headers of 64 bytes).
const MAX_TABLE: u64 = 4 << 20;

/// `PT_LOAD`.
pub(crate) const PT_LOAD: u32 = 1;
/// Segment flags.
pub(crate) const PF_X: u32 = 1;
pub(crate) const PF_W: u32 = 2;

/// One program header (segment).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Segment {
    pub(crate) kind: u32,
    pub(crate) flags: u32,
    pub(crate) offset: u64,
    pub(crate) vaddr: u64,
    pub(crate) filesz: u64,
    pub(crate) memsz: u64,
}

/// One section header, with its name.
#[derive(Clone, Debug)]
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) addr: u64,
    pub(crate) offset: u64,
    pub(crate) size: u64,
    /// `SHT_NOBITS` sections have no bytes in the file.
    pub(crate) nobits: bool,
}

/// A parsed ELF file's headers.
#[derive(Debug)]
pub(crate) struct Elf {
    pub(crate) segments: Vec<Segment>,
    pub(crate) sections: Vec<Section>,
    len: u64,
}

/// Reads `n` bytes at `offset` of `r`, a file of `len` bytes.
pub(crate) fn read_at<R: Read + Seek>(
    r: &mut R,
    len: u64,
    offset: u64,
    n: u64,
) -> Result<Vec<u8>, String> {
    let end = offset.checked_add(n).ok_or("offset out of range")?;
    if end > len {
        return Err(format!(
            "{n} bytes at offset {offset} are past the end of the file"
        ));
    }
    r.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; usize::try_from(n).map_err(|_| "too large")?];
    r.read_exact(&mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// The size of a table of `n` entries of `size` bytes, at most [`MAX_TABLE`].
fn table_size(n: u64, size: u64) -> Result<u64, String> {
    let bytes = n.saturating_mul(size);
    if bytes > MAX_TABLE {
        return Err(format!(
            "a header table of {n} entries of {size} bytes is over the {MAX_TABLE}-byte limit"
        ));
    }
    Ok(bytes)
}

/// Reads integers of one width and byte order from a header.
struct Fields<'a> {
    b: &'a [u8],
    big: bool,
}

impl Fields<'_> {
    fn uint(&self, at: usize, width: usize) -> Result<u64, String> {
        let bytes = at
            .checked_add(width)
            .and_then(|end| self.b.get(at..end))
            .ok_or("header too short")?;
        let fold = |v: u64, byte: &u8| (v << 8) | u64::from(*byte);
        Ok(if self.big {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        })
    }
}

impl Elf {
    /// Parses the headers of `r`.
    pub(crate) fn parse<R: Read + Seek>(r: &mut R) -> Result<Elf, String> {
        let len = r.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        let ident = read_at(r, len, 0, 64.min(len))?;
        if ident.get(..4) != Some(b"\x7fELF") {
            return Err("no ELF magic".into());
        }
        let wide = match ident.get(4) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err("unknown ELF class".into()),
        };
        let big = match ident.get(5) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err("unknown ELF byte order".into()),
        };
        let f = Fields { b: &ident, big };
        // Offsets of e_phoff, e_shoff, and of e_phentsize, which e_phnum, e_shentsize,
        // e_shnum and e_shstrndx follow.
        let (phoff, shoff, rest) = if wide {
            (f.uint(32, 8)?, f.uint(40, 8)?, 54)
        } else {
            (f.uint(28, 4)?, f.uint(32, 4)?, 42)
        };
        let phentsize = f.uint(rest, 2)?;
        let phnum = f.uint(rest + 2, 2)?;
        let shentsize = f.uint(rest + 4, 2)?;
        let shnum = f.uint(rest + 6, 2)?;
        let shstrndx = f.uint(rest + 8, 2)?;
        let mut elf = Elf {
            segments: Vec::new(),
            sections: Vec::new(),
            len,
        };
        let need_ph = if wide { 56 } else { 32 };
        if phnum > 0 && phentsize >= need_ph && phnum <= MAX_HEADERS {
            let table = read_at(r, len, phoff, table_size(phnum, phentsize)?)?;
            for i in 0..phnum {
                let at = usize::try_from(i * phentsize).map_err(|_| "too large")?;
                let h = Fields {
                    b: table.get(at..).unwrap_or_default(),
                    big,
                };
                elf.segments.push(if wide {
                    Segment {
                        kind: h.uint(0, 4)? as u32,
                        flags: h.uint(4, 4)? as u32,
                        offset: h.uint(8, 8)?,
                        vaddr: h.uint(16, 8)?,
                        filesz: h.uint(32, 8)?,
                        memsz: h.uint(40, 8)?,
                    }
                } else {
                    Segment {
                        kind: h.uint(0, 4)? as u32,
                        offset: h.uint(4, 4)?,
                        vaddr: h.uint(8, 4)?,
                        filesz: h.uint(16, 4)?,
                        memsz: h.uint(20, 4)?,
                        flags: h.uint(24, 4)? as u32,
                    }
                });
            }
        }
        let need_sh = if wide { 64 } else { 40 };
        if shnum > 0 && shentsize >= need_sh && shnum <= MAX_HEADERS && shoff > 0 {
            let table = read_at(r, len, shoff, table_size(shnum, shentsize)?)?;
            let mut raw = Vec::new();
            for i in 0..shnum {
                let at = usize::try_from(i * shentsize).map_err(|_| "too large")?;
                let h = Fields {
                    b: table.get(at..).unwrap_or_default(),
                    big,
                };
                let (name, kind) = (h.uint(0, 4)?, h.uint(4, 4)?);
                let (addr, offset, size) = if wide {
                    (h.uint(16, 8)?, h.uint(24, 8)?, h.uint(32, 8)?)
                } else {
                    (h.uint(12, 4)?, h.uint(16, 4)?, h.uint(20, 4)?)
                };
                raw.push((name, kind, addr, offset, size));
            }
            let names = match raw.get(usize::try_from(shstrndx).unwrap_or(usize::MAX)) {
                Some(&(_, _, _, offset, size)) if size <= MAX_NAMES => {
                    read_at(r, len, offset, size).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            for (name, kind, addr, offset, size) in raw {
                let name = usize::try_from(name)
                    .ok()
                    .and_then(|at| names.get(at..))
                    .map(|s| {
                        String::from_utf8_lossy(s.split(|c| *c == 0).next().unwrap_or_default())
                            .into_owned()
                    })
                    .unwrap_or_default();
                elf.sections.push(Section {
                    name,
                    addr,
                    offset,
                    size,
                    nobits: kind == 8,
                });
            }
        }
        Ok(elf)
    }

    /// The section named `name`.
    pub(crate) fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// The bytes of section `s`, at most `cap` of them.
    pub(crate) fn section_data<R: Read + Seek>(
        &self,
        r: &mut R,
        s: &Section,
        cap: u64,
    ) -> Result<Vec<u8>, String> {
        if s.nobits {
            return Ok(Vec::new());
        }
        if s.size > cap {
            return Err(format!(
                "section {} is {} bytes, over the {cap}-byte limit",
                s.name, s.size
            ));
        }
        read_at(r, self.len, s.offset, s.size)
    }

    /// Up to `size` bytes at virtual address `addr`, from the first segment whose file
    /// bytes hold it.
    pub(crate) fn read_vaddr<R: Read + Seek>(
        &self,
        r: &mut R,
        addr: u64,
        size: u64,
    ) -> Result<Vec<u8>, String> {
        for s in &self.segments {
            if s.filesz > 0 && s.vaddr <= addr && addr - s.vaddr < s.filesz {
                let skip = addr - s.vaddr;
                let n = (s.filesz - skip).min(size);
                let at = s.offset.checked_add(skip).ok_or("offset out of range")?;
                let n = n.min(self.len.saturating_sub(at));
                return read_at(r, self.len, at, n);
            }
        }
        Err(format!("address {addr:#x} is in no segment"))
    }
}
