//! bbolt files built page by page, for testing readers of the format (`cache-bbolt`, and
//! the import of the reference scanner's fs cache) on layouts real writers rarely produce
//! and on damaged files. The layout is written out here, independently of any reader.
//!
//! ```
//! use cache_testkit::bbolt::{FileBuilder, Val, data};
//!
//! let mut b = FileBuilder::new(4096);
//! let blobs = b.leaf(&[(b"sha256:01", data("{}"))]);
//! let root = b.leaf(&[
//!     (b"artifact", Val::Inline(vec![(b"sha256:02".to_vec(), b"{}".to_vec())])),
//!     (b"blob", Val::Pages(blobs)),
//! ]);
//! let file: Vec<u8> = b.file(root);
//! assert_eq!(file.len(), 5 * 4096);
//! ```

use std::collections::BTreeMap;

/// What a leaf element holds.
#[derive(Clone, Debug)]
pub enum Val {
    /// A value.
    Data(Vec<u8>),
    /// A nested bucket with its own root page.
    Pages(u64),
    /// A nested bucket stored inline, with these key/value pairs.
    Inline(Vec<(Vec<u8>, Vec<u8>)>),
    /// Raw element flags and value bytes.
    Raw(u32, Vec<u8>),
}

/// A value holding `s`.
pub fn data(s: &str) -> Val {
    Val::Data(s.as_bytes().to_vec())
}

/// Builds a file: pages from 3 on (0 and 1 are the meta pages, 2 an empty freelist). Pages
/// are added bottom-up, children before the pages that refer to them.
#[derive(Clone, Debug)]
pub struct FileBuilder {
    page_size: usize,
    /// Page ID → its bytes with its overflow pages, padded to whole pages.
    pages: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl FileBuilder {
    /// A file of pages of `page_size` bytes.
    pub fn new(page_size: usize) -> Self {
        let mut pages = BTreeMap::new();
        pages.insert(2, page(page_size, 2, 0x10, 0, &[]));
        FileBuilder {
            page_size,
            pages,
            next: 3,
        }
    }

    /// Adds a leaf page (with overflow pages when its contents need them).
    pub fn leaf(&mut self, items: &[(&[u8], Val)]) -> u64 {
        let body = leaf_body(items);
        self.add(0x02, items.len(), &body)
    }

    /// Adds a branch page over `(first key, child page)` pairs.
    pub fn branch(&mut self, children: &[(&[u8], u64)]) -> u64 {
        let n = children.len();
        let mut elems = Vec::new();
        let mut keys = Vec::new();
        for (i, (key, child)) in children.iter().enumerate() {
            let pos = 16 * (n - i) + keys.len();
            elems.extend_from_slice(&(pos as u32).to_le_bytes());
            elems.extend_from_slice(&(key.len() as u32).to_le_bytes());
            elems.extend_from_slice(&child.to_le_bytes());
            keys.extend_from_slice(key);
        }
        elems.extend(keys);
        self.add(0x01, n, &elems)
    }

    fn add(&mut self, flags: u16, count: usize, body: &[u8]) -> u64 {
        let id = self.next;
        let pages = (16 + body.len()).div_ceil(self.page_size);
        let overflow = (pages - 1) as u32;
        let mut p = page(self.page_size, id, flags, count as u16, body);
        p[12..16].copy_from_slice(&overflow.to_le_bytes());
        p.resize(pages * self.page_size, 0);
        self.pages.insert(id, p);
        self.next += pages as u64;
        id
    }

    /// The file: both meta pages, each `(root page, transaction ID)`, then the pages. The
    /// meta of an even transaction is page 0, of an odd one page 1, as bbolt writes them.
    pub fn finish(&self, metas: [(u64, u64); 2]) -> Vec<u8> {
        let mut file = vec![0u8; self.next as usize * self.page_size];
        for (root, txid) in metas {
            let id = txid % 2;
            let m = meta(self.page_size as u32, root, self.next, txid);
            let at = id as usize * self.page_size;
            file[at..at + m.len()].copy_from_slice(&m);
            file[at..at + 8].copy_from_slice(&id.to_le_bytes());
        }
        for (id, p) in &self.pages {
            let at = *id as usize * self.page_size;
            file[at..at + p.len()].copy_from_slice(p);
        }
        file
    }

    /// The file with both meta pages naming `root`, at transactions 4 and 5.
    pub fn file(&self, root: u64) -> Vec<u8> {
        self.finish([(root, 4), (root, 5)])
    }
}

/// A meta page's first 80 bytes: header, fields and checksum.
pub fn meta(page_size: u32, root: u64, pages: u64, txid: u64) -> Vec<u8> {
    let mut m = vec![0u8; 16];
    m[8..10].copy_from_slice(&0x04u16.to_le_bytes());
    for word in [0xED0C_DAEDu32, 2, page_size, 0] {
        m.extend_from_slice(&word.to_le_bytes());
    }
    for word in [root, 0, 2, pages, txid] {
        m.extend_from_slice(&word.to_le_bytes());
    }
    let sum = fnv1a64(&m[16..72]);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

/// Rewrites the checksum of the meta page at byte `at` after its fields were changed.
pub fn reseal_meta(file: &mut [u8], at: usize) {
    let sum = fnv1a64(&file[at + 16..at + 72]);
    file[at + 72..at + 80].copy_from_slice(&sum.to_le_bytes());
}

/// Page header and body, unpadded.
fn page(page_size: usize, id: u64, flags: u16, count: u16, body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(page_size);
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&flags.to_le_bytes());
    p.extend_from_slice(&count.to_le_bytes());
    p.extend_from_slice(&0u32.to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// FNV-1a, 64 bits: bbolt's meta page checksum.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A leaf's elements, then its keys and values.
fn leaf_body(items: &[(&[u8], Val)]) -> Vec<u8> {
    let n = items.len();
    let mut elems = Vec::new();
    let mut rest = Vec::new();
    for (i, (key, val)) in items.iter().enumerate() {
        let (flags, value) = match val {
            Val::Data(v) => (0u32, v.clone()),
            Val::Pages(root) => (1, [root.to_le_bytes(), 0u64.to_le_bytes()].concat()),
            Val::Inline(pairs) => {
                let items: Vec<(&[u8], Val)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_slice(), Val::Data(v.clone())))
                    .collect();
                let mut v = vec![0u8; 16];
                v.extend(page(0, 0, 0x02, pairs.len() as u16, &leaf_body(&items)));
                (1, v)
            }
            Val::Raw(flags, v) => (*flags, v.clone()),
        };
        let pos = 16 * (n - i) + rest.len();
        for word in [flags, pos as u32, key.len() as u32, value.len() as u32] {
            elems.extend_from_slice(&word.to_le_bytes());
        }
        rest.extend_from_slice(key);
        rest.extend_from_slice(&value);
    }
    elems.extend(rest);
    elems
}
