//! The bbolt file format, as this reader sees it: the byte layouts, and decoders that
//! check every count, offset and length against the bytes they are given.
//!
//! A file is a sequence of pages of one size; page `n` starts at byte `n × page size`.
//! Pages 0 and 1 are the two meta pages, written alternately by successive transactions;
//! the valid one with the higher transaction ID describes the database. Every other page
//! is a branch, leaf or freelist page, and may continue over the `overflow` pages after it
//! (a leaf holding a large value does). Integers are in the writing machine's byte order;
//! this reader reads little-endian files and recognises a big-endian one by its magic
//! number.
//!
//! **Page header**, at the start of every page and of an inline bucket's page:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | page ID (its own number) |
//! | 8 | 2 | flags: `0x01` branch, `0x02` leaf, `0x04` meta, `0x10` freelist |
//! | 10 | 2 | count: the elements on the page |
//! | 12 | 4 | overflow: the pages after this one that belong to it |
//!
//! **Meta**, after the header of pages 0 and 1:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 16 | 4 | magic `0xED0CDAED` |
//! | 20 | 4 | format version, 2 |
//! | 24 | 4 | page size |
//! | 28 | 4 | flags (unused) |
//! | 32 | 8 | root bucket: page ID of its root page |
//! | 40 | 8 | root bucket: sequence |
//! | 48 | 8 | freelist page ID (`u64::MAX`: none written) |
//! | 56 | 8 | high-water mark: the number of pages in use |
//! | 64 | 8 | transaction ID |
//! | 72 | 8 | checksum: FNV-1a 64 of bytes 16..72 |
//!
//! **Branch element** `i`, 16 bytes at `16 + 16 i`: key position `u32` (from the
//! element's own first byte), key size `u32`, child page ID `u64`. A branch page lists its
//! children in key order, each under its first key.
//!
//! **Leaf element** `i`, 16 bytes at `16 + 16 i`: flags `u32` (`0x01`: the value is a
//! nested bucket), key position `u32` (from the element's first byte), key size `u32`,
//! value size `u32`; the value follows the key. Keys are in strictly increasing byte order
//! across a bucket's leaves.
//!
//! **Bucket value** (a leaf element with flag `0x01`): the bucket's root page ID `u64` and
//! sequence `u64`. Root 0 means an *inline* bucket: its one leaf page (header, elements,
//! keys and values, positions relative to that page) follows in the value itself. Only a
//! bucket without nested buckets is written inline.

/// Bytes of a page header.
pub(crate) const PAGE_HEADER: usize = 16;
/// Bytes of a branch or leaf element.
pub(crate) const ELEMENT: usize = 16;
/// Bytes of a page header and meta, up to the end of the checksum.
pub(crate) const META_END: usize = 80;
/// Bytes of a bucket value's header (root page ID and sequence).
pub(crate) const BUCKET_HEADER: usize = 16;

/// The meta magic number.
pub(crate) const MAGIC: u32 = 0xED0C_DAED;
/// The only format version there is.
pub(crate) const VERSION: u32 = 2;
/// The smallest page size accepted (bbolt itself looks for meta pages from 1 KiB up).
pub(crate) const MIN_PAGE_SIZE: u32 = 1024;
/// The largest page size accepted (16 MiB, the largest bbolt looks for).
pub(crate) const MAX_PAGE_SIZE: u32 = 1 << 24;

/// Page flag: a branch page.
pub(crate) const BRANCH: u16 = 0x01;
/// Page flag: a leaf page.
pub(crate) const LEAF: u16 = 0x02;
/// Page flag: a meta page.
pub(crate) const META: u16 = 0x04;
/// Page flag: the freelist page.
pub(crate) const FREELIST: u16 = 0x10;
/// Leaf element flag: the value is a nested bucket.
pub(crate) const BUCKET_FLAG: u32 = 0x01;

/// What is wrong, in words; the caller adds the file and where.
pub(crate) type Problem = String;

/// A decoded, validated meta page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Page size in bytes.
    pub page_size: u32,
    /// Root page of the root bucket.
    pub root: u64,
    /// The number of pages in use (the high-water mark).
    pub pages: u64,
    /// Transaction ID.
    pub txid: u64,
}

impl Meta {
    /// Decodes the meta in `page` (which starts with the page header) and checks its magic
    /// number, version, checksum and page size.
    pub(crate) fn decode(page: &[u8]) -> Result<Meta, Problem> {
        let fields = page
            .get(PAGE_HEADER..META_END)
            .ok_or_else(|| format!("only {} bytes, too short for a meta page", page.len()))?;
        let magic = u32_at(fields, 0).unwrap_or_default();
        if magic != MAGIC {
            return Err(if magic == MAGIC.swap_bytes() {
                "written on a big-endian machine; only little-endian files can be read".into()
            } else {
                format!("no bbolt magic number (found {magic:#010x})")
            });
        }
        let version = u32_at(fields, 4).unwrap_or_default();
        if version != VERSION {
            return Err(format!("format version {version}, not {VERSION}"));
        }
        let stored = u64_at(fields, 56).unwrap_or_default();
        let computed = fnv1a64(fields.get(..56).unwrap_or_default());
        if stored != computed {
            return Err(format!(
                "checksum mismatch (stored {stored:#018x}, computed {computed:#018x})"
            ));
        }
        let page_size = u32_at(fields, 8).unwrap_or_default();
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(format!(
                "page size {page_size} outside {MIN_PAGE_SIZE}..={MAX_PAGE_SIZE}"
            ));
        }
        Ok(Meta {
            page_size,
            root: u64_at(fields, 16).unwrap_or_default(),
            pages: u64_at(fields, 40).unwrap_or_default(),
            txid: u64_at(fields, 48).unwrap_or_default(),
        })
    }
}

/// A decoded page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageHeader {
    /// The page's own ID.
    pub id: u64,
    /// Its kind.
    pub flags: u16,
    /// Its elements.
    pub count: u16,
    /// Pages after it that belong to it.
    pub overflow: u32,
}

impl PageHeader {
    /// Decodes the header at the start of `page`.
    pub(crate) fn decode(page: &[u8]) -> Result<PageHeader, Problem> {
        let short = || format!("only {} bytes, too short for a page header", page.len());
        Ok(PageHeader {
            id: u64_at(page, 0).ok_or_else(short)?,
            flags: u16_at(page, 8).ok_or_else(short)?,
            count: u16_at(page, 10).ok_or_else(short)?,
            overflow: u32_at(page, 12).ok_or_else(short)?,
        })
    }

    /// Checks that `count` elements fit in a page of `len` bytes.
    pub(crate) fn check_count(&self, len: usize) -> Result<(), Problem> {
        let needed = PAGE_HEADER + ELEMENT * usize::from(self.count);
        if needed > len {
            return Err(format!(
                "{} elements need {needed} bytes, but the page has {len}",
                self.count
            ));
        }
        Ok(())
    }
}

/// The name of a page kind, for messages.
pub(crate) fn kind_name(flags: u16) -> String {
    match flags {
        BRANCH => "branch".into(),
        LEAF => "leaf".into(),
        META => "meta".into(),
        FREELIST => "freelist".into(),
        other => format!("unknown ({other:#06x})"),
    }
}

/// Leaf element `i` of `page`: its key, and its value or nested bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeafElement<'a> {
    /// The key.
    pub key: &'a [u8],
    /// True when the value is a nested bucket.
    pub bucket: bool,
    /// The value bytes (for a bucket, its bucket value).
    pub value: &'a [u8],
}

/// Decodes leaf element `i` of `page` (header first); the caller has checked the count.
pub(crate) fn leaf_element(page: &[u8], i: usize) -> Result<LeafElement<'_>, Problem> {
    let at = PAGE_HEADER + ELEMENT * i;
    let field = |n: usize| {
        u32_at(page, at + 4 * n).ok_or_else(|| format!("element {i} lies past the page"))
    };
    let (flags, pos, ksize, vsize) = (field(0)?, field(1)?, field(2)?, field(3)?);
    if flags & !BUCKET_FLAG != 0 {
        return Err(format!("element {i} has unknown flags {flags:#x}"));
    }
    let key_start = at as u64 + u64::from(pos);
    let key_end = key_start + u64::from(ksize);
    let value_end = key_end + u64::from(vsize);
    let key = slice(page, key_start, key_end).ok_or_else(|| past(i, "key", key_end, page.len()))?;
    let value =
        slice(page, key_end, value_end).ok_or_else(|| past(i, "value", value_end, page.len()))?;
    Ok(LeafElement {
        key,
        bucket: flags & BUCKET_FLAG != 0,
        value,
    })
}

/// Branch element `i` of `page`: the first key of a child and the child's page ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BranchElement<'a> {
    /// The child's first key.
    pub key: &'a [u8],
    /// The child's page ID.
    pub child: u64,
}

/// Decodes branch element `i` of `page` (header first); the caller has checked the count.
pub(crate) fn branch_element(page: &[u8], i: usize) -> Result<BranchElement<'_>, Problem> {
    let at = PAGE_HEADER + ELEMENT * i;
    let lies_past = || format!("element {i} lies past the page");
    let pos = u32_at(page, at).ok_or_else(lies_past)?;
    let ksize = u32_at(page, at + 4).ok_or_else(lies_past)?;
    let child = u64_at(page, at + 8).ok_or_else(lies_past)?;
    let key_start = at as u64 + u64::from(pos);
    let key_end = key_start + u64::from(ksize);
    let key = slice(page, key_start, key_end).ok_or_else(|| past(i, "key", key_end, page.len()))?;
    Ok(BranchElement { key, child })
}

/// Where a nested bucket's entries are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BucketRoot<'a> {
    /// In its own pages, from this root page.
    Pages(u64),
    /// In the leaf page stored in the bucket value itself (header first).
    Inline(&'a [u8]),
}

/// Decodes a bucket value.
pub(crate) fn bucket_root(value: &[u8]) -> Result<BucketRoot<'_>, Problem> {
    let root = u64_at(value, 0).ok_or_else(|| {
        format!(
            "a bucket value of {} bytes, shorter than its {BUCKET_HEADER}-byte header",
            value.len()
        )
    })?;
    if root != 0 {
        return Ok(BucketRoot::Pages(root));
    }
    match value.get(BUCKET_HEADER..) {
        Some(page) if page.len() >= PAGE_HEADER => Ok(BucketRoot::Inline(page)),
        _ => Err(format!(
            "an inline bucket value of {} bytes, too short to hold its page",
            value.len()
        )),
    }
}

/// FNV-1a, 64 bits: the meta checksum.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn past(i: usize, what: &str, end: u64, len: usize) -> Problem {
    format!("element {i}'s {what} ends at byte {end}, past the page's {len} bytes")
}

/// `bytes[start..end]`, or `None` when that is not inside `bytes`.
fn slice(bytes: &[u8], start: u64, end: u64) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = usize::try_from(end).ok()?;
    bytes.get(start..end)
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn leaf_elements_are_bounded_by_their_page() {
        // One element: key "k" (1 byte) and value "vv" right after the element array.
        let mut page = vec![0u8; 16];
        page[8..10].copy_from_slice(&LEAF.to_le_bytes());
        page[10..12].copy_from_slice(&1u16.to_le_bytes());
        for word in [0u32, 16, 1, 2] {
            page.extend_from_slice(&word.to_le_bytes());
        }
        page.extend_from_slice(b"kvv");
        let e = leaf_element(&page, 0).unwrap();
        assert_eq!((e.key, e.value, e.bucket), (&b"k"[..], &b"vv"[..], false));
        // A value one byte longer than the page holds.
        page[28..32].copy_from_slice(&3u32.to_le_bytes());
        let msg = leaf_element(&page, 0).unwrap_err();
        assert!(
            msg.contains("value ends at byte 36, past the page's 35 bytes"),
            "{msg}"
        );
        // Offsets that would overflow 32 bits added together.
        page[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        page[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(leaf_element(&page, 0).is_err());
        // An element past the page.
        assert!(leaf_element(&page, 1).unwrap_err().contains("lies past"));
    }

    #[test]
    fn bucket_values_say_where_the_bucket_is() {
        let mut v = 7u64.to_le_bytes().to_vec();
        v.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(bucket_root(&v), Ok(BucketRoot::Pages(7)));
        let mut inline = vec![0u8; 16];
        assert!(bucket_root(&inline).unwrap_err().contains("too short"));
        inline.extend_from_slice(&[0u8; 16]);
        assert_eq!(bucket_root(&inline), Ok(BucketRoot::Inline(&[0u8; 16][..])));
        assert!(bucket_root(&[1, 2, 3]).unwrap_err().contains("shorter"));
    }
}
