//! [`Db`]: an open bbolt file, its meta page chosen, and the walk over its buckets.

use std::{
    fs::{File, TryLockError},
    ops::ControlFlow,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::{
    error::{Error, Result},
    layout::{self, BRANCH, BucketRoot, LEAF, META_END, MIN_PAGE_SIZE, Meta, PageHeader, Problem},
};

/// The deepest a walk goes, counting both the levels of a bucket's page tree and the
/// nesting of buckets. A B+tree of 2⁶⁴ keys is far shallower; a deeper chain is a corrupt
/// (or hostile) file, and the bound keeps the walk's recursion from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// An open bbolt file: the meta page that describes it, and the file itself, opened
/// read-only and locked shared as bbolt's own readers lock it.
///
/// Opening reads and checks the two meta pages only; [`Db::walk`] reads the rest. The file
/// is never written, and no offset in it is trusted: every page reference, count, position
/// and length is checked against the page and the file, and a problem is an
/// [`Error::Corrupt`] naming where it is.
#[derive(Debug)]
pub struct Db {
    file: File,
    path: PathBuf,
    len: u64,
    meta: Meta,
    damaged_meta: Option<String>,
}

/// One entry of a bucket, as [`Db::walk`] visits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The names of the buckets holding the entry, outermost first; empty for the
    /// entries of the root bucket (which, in files bbolt writes, are all buckets).
    pub bucket: &'a [Vec<u8>],
    /// The entry's key.
    pub key: &'a [u8],
    /// Its value, or the nested bucket it names.
    pub item: Item<'a>,
}

/// What an [`Entry`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A value: the stored bytes.
    Value(&'a [u8]),
    /// A nested bucket, whose entries the walk visits next.
    Bucket(BucketKind),
}

/// How a nested bucket is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketKind {
    /// Inside its parent's leaf, in the bucket value (bbolt stores small buckets so).
    Inline,
    /// In pages of its own.
    Pages,
}

/// What a completed [`Db::walk`] read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Values visited.
    pub values: u64,
    /// Nested buckets stored inline.
    pub inline_buckets: u64,
    /// Nested buckets with pages of their own.
    pub page_buckets: u64,
    /// Branch pages read.
    pub branch_pages: u64,
    /// Leaf pages read (not counting inline ones).
    pub leaf_pages: u64,
    /// Overflow pages read: pages that continue a branch or leaf page.
    pub overflow_pages: u64,
    /// The deepest level reached, counting page levels and bucket nesting (the root
    /// bucket's root page is level 1).
    pub depth: usize,
}

impl Db {
    /// Opens `path` read-only, takes a shared lock on it (failing with
    /// [`Error::Locked`] while a writer holds it open), and reads and checks both meta
    /// pages: magic number, version and checksum. The page size comes from the first meta
    /// page, or, when that one is damaged, from the second, looked for at each possible
    /// page size. Of two valid meta pages the one with the higher transaction ID is used.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref().to_path_buf();
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |cause| Error::Io {
                action,
                path,
                cause,
            }
        };
        let file = File::open(&path).map_err(io("open", &path))?;
        match file.try_lock_shared() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Locked { path }),
            Err(TryLockError::Error(e)) => return Err(io("lock", &path)(e)),
        }
        let info = file.metadata().map_err(io("read", &path))?;
        if !info.is_file() {
            return Err(Error::NotBbolt {
                path,
                reason: "not a regular file".into(),
            });
        }
        let mut db = Db {
            file,
            path,
            len: info.len(),
            meta: Meta {
                page_size: MIN_PAGE_SIZE,
                root: 0,
                pages: 0,
                txid: 0,
            },
            damaged_meta: None,
        };
        db.choose_meta()?;
        db.check_meta()?;
        Ok(db)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The page size, in bytes.
    pub fn page_size(&self) -> u32 {
        self.meta.page_size
    }

    /// The transaction ID of the meta page in use: the last committed transaction.
    pub fn txid(&self) -> u64 {
        self.meta.txid
    }

    /// The number of pages in use (the meta page's high-water mark).
    pub fn pages(&self) -> u64 {
        self.meta.pages
    }

    /// When one of the two meta pages is not valid, which one and why (e.g. `meta page
    /// 1: checksum mismatch (…)`): the other one was used, so the file was readable, but
    /// it is damaged, or was being written when it was copied.
    pub fn damaged_meta(&self) -> Option<&str> {
        self.damaged_meta.as_deref()
    }

    /// Visits every entry of every bucket, depth first: the entries of a bucket in key
    /// order, each nested bucket's entry right before the entries it holds. `visit`
    /// returning [`ControlFlow::Break`] ends the walk early (still `Ok`).
    ///
    /// The walk reads each page at most once: a page reached a second time (a cycle, or a
    /// page two parents share) is an [`Error::Corrupt`], as is anything else that does not
    /// fit — so a corrupt file ends in an error, never in a panic, a read outside the file
    /// or an endless walk. Entries visited before the error was found have been visited:
    /// callers that must not act on a damaged file walk it once to check it first.
    pub fn walk(&self, visit: &mut dyn FnMut(&Entry<'_>) -> ControlFlow<()>) -> Result<WalkStats> {
        let mut walker = Walker {
            db: self,
            seen: Seen::new(self.meta.pages),
            stats: WalkStats::default(),
            path: Vec::new(),
            visit,
        };
        let mut last = None;
        let _ = walker.tree(self.meta.root, 1, &mut last)?;
        Ok(walker.stats)
    }

    /// Reads both meta pages and keeps the valid one with the higher transaction ID.
    fn choose_meta(&mut self) -> Result<()> {
        if self.len < META_END as u64 {
            return Err(self.not_bbolt(format!(
                "the file has {} bytes, too few for a meta page",
                self.len
            )));
        }
        let mut first = [0u8; META_END];
        self.read_at(&mut first, 0)?;
        let meta0 = Meta::decode(&first);
        let (page_size, meta1) = match meta0 {
            Ok(m) => (m.page_size, self.meta_at(u64::from(m.page_size))?),
            Err(_) => match self.find_second_meta()? {
                Ok(m) => (m.page_size, Ok(m)),
                Err(e) => (0, Err(e)),
            },
        };
        let meta1 = meta1.and_then(|m| {
            if m.page_size == page_size {
                Ok(m)
            } else {
                Err(format!(
                    "page size {} differs from meta page 0's {page_size}",
                    m.page_size
                ))
            }
        });
        self.meta = match (meta0, meta1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(e)) => {
                self.damaged_meta = Some(format!("meta page 1: {e}"));
                a
            }
            (Err(e), Ok(b)) => {
                self.damaged_meta = Some(format!("meta page 0: {e}"));
                b
            }
            (Err(e0), Err(e1)) => {
                return Err(self.not_bbolt(format!("meta page 0: {e0}; meta page 1: {e1}")));
            }
        };
        Ok(())
    }

    /// Meta page 1 when meta page 0 gave no page size: it is where one of the page sizes
    /// bbolt uses (1 KiB to 16 MiB) says, and says that page size itself. When none is
    /// valid, the problem of the first one with the magic number explains why.
    fn find_second_meta(&self) -> Result<Result<Meta, Problem>> {
        let mut why = None;
        for shift in 0..=14 {
            let at = u64::from(MIN_PAGE_SIZE) << shift;
            match self.meta_at(at)? {
                Ok(m) if u64::from(m.page_size) == at => return Ok(Ok(m)),
                Ok(m) => {
                    why.get_or_insert_with(|| format!("at byte {at}: page size {}", m.page_size));
                }
                Err(e) if !e.starts_with("no bbolt magic") && !e.starts_with("missing") => {
                    why.get_or_insert_with(|| format!("at byte {at}: {e}"));
                }
                Err(_) => {}
            }
        }
        Ok(Err(
            why.unwrap_or_else(|| "not found at any page size".into())
        ))
    }

    /// The meta page at byte `at`, or why it is not one.
    fn meta_at(&self, at: u64) -> Result<Result<Meta, Problem>> {
        if at.saturating_add(META_END as u64) > self.len {
            return Ok(Err(format!("missing (the file ends at byte {})", self.len)));
        }
        let mut buf = [0u8; META_END];
        self.read_at(&mut buf, at)?;
        Ok(Meta::decode(&buf))
    }

    /// Checks the chosen meta page against the file: every page it counts is in the file,
    /// and the root bucket's page is one of them.
    fn check_meta(&self) -> Result<()> {
        let Meta {
            page_size,
            root,
            pages,
            ..
        } = self.meta;
        let needed = pages.checked_mul(u64::from(page_size));
        if needed.is_none_or(|n| n > self.len) {
            return Err(self.corrupt(format!(
                "truncated: the meta page counts {pages} pages of {page_size} bytes, but the \
                 file has only {} bytes",
                self.len
            )));
        }
        if root < 2 || root >= pages {
            return Err(self.corrupt(format!(
                "the root bucket's page {root} is not a page of the {pages} in use"
            )));
        }
        Ok(())
    }

    /// Reads page `id` with its overflow pages, after checking that it is a branch or
    /// leaf page labelled `id`, within the pages in use, not seen before in this walk, and
    /// with as many elements as fit.
    fn read_page(&self, id: u64, seen: &mut Seen) -> Result<Page> {
        let pages = self.meta.pages;
        if id < 2 {
            return Err(self.corrupt(format!("a page reference points at meta page {id}")));
        }
        if id >= pages {
            return Err(self.corrupt(format!(
                "a page reference points at page {id}, past the {pages} pages in use"
            )));
        }
        let page_size = u64::from(self.meta.page_size);
        // In the file: check_meta made sure of pages × page size ≤ len.
        let offset = id * page_size;
        let mut data = vec![0u8; page_size as usize];
        self.read_at(&mut data, offset)?;
        let header = PageHeader::decode(&data).map_err(|p| self.corrupt_page(id, p))?;
        if header.id != id {
            return Err(self.corrupt_page(id, format!("it is labelled page {}", header.id)));
        }
        if header.flags != BRANCH && header.flags != LEAF {
            return Err(self.corrupt_page(
                id,
                format!(
                    "a {} page where a branch or leaf page belongs",
                    layout::kind_name(header.flags)
                ),
            ));
        }
        let last = id + u64::from(header.overflow);
        if last >= pages {
            return Err(self.corrupt_page(
                id,
                format!(
                    "it continues over {} more pages, past the {pages} pages in use",
                    header.overflow
                ),
            ));
        }
        for p in id..=last {
            if !seen.insert(p) {
                return Err(self.corrupt_page(
                    p,
                    "reached a second time (a cycle, or a page two parents share)".into(),
                ));
            }
        }
        if header.overflow > 0 {
            let total = (last - id + 1) * page_size;
            data.resize(total as usize, 0);
            self.read_at(&mut data[page_size as usize..], offset + page_size)?;
        }
        header
            .check_count(data.len())
            .map_err(|p| self.corrupt_page(id, p))?;
        if header.flags == BRANCH && header.count == 0 {
            return Err(self.corrupt_page(id, "a branch page without elements".into()));
        }
        Ok(Page { header, data })
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|cause| Error::Io {
                action: "read",
                path: self.path.clone(),
                cause,
            })
    }

    fn not_bbolt(&self, reason: String) -> Error {
        Error::NotBbolt {
            path: self.path.clone(),
            reason,
        }
    }

    fn corrupt(&self, problem: String) -> Error {
        Error::Corrupt {
            path: self.path.clone(),
            problem,
        }
    }

    fn corrupt_page(&self, id: u64, problem: Problem) -> Error {
        self.corrupt(format!("page {id}: {problem}"))
    }
}

/// A branch or leaf page read from the file, with its overflow pages.
struct Page {
    header: PageHeader,
    data: Vec<u8>,
}

/// The pages a walk has read: one bit per page in use.
struct Seen(Vec<u64>);

impl Seen {
    fn new(pages: u64) -> Seen {
        Seen(vec![0; pages.div_ceil(64) as usize])
    }

    /// Marks page `id` (known to be in use); false when it was marked already.
    fn insert(&mut self, id: u64) -> bool {
        let (word, bit) = ((id / 64) as usize, 1u64 << (id % 64));
        match self.0.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }
}

/// The state of one walk.
struct Walker<'d, 'v> {
    db: &'d Db,
    seen: Seen,
    stats: WalkStats,
    /// The names of the buckets being walked, outermost first.
    path: Vec<Vec<u8>>,
    visit: &'v mut dyn FnMut(&Entry<'_>) -> ControlFlow<()>,
}

/// Where a leaf's bytes came from, for messages and rules.
#[derive(Clone, Copy)]
enum Leaf {
    Page(u64),
    Inline,
}

impl Walker<'_, '_> {
    /// Walks the page tree rooted at page `id`, at level `depth`. `last` is the last key
    /// visited in the bucket, which every key must follow.
    fn tree(
        &mut self,
        id: u64,
        depth: usize,
        last: &mut Option<Vec<u8>>,
    ) -> Result<ControlFlow<()>> {
        self.deeper(depth)?;
        let page = match self.db.read_page(id, &mut self.seen) {
            Ok(page) => page,
            Err(Error::Corrupt { path, problem }) => {
                return Err(Error::Corrupt {
                    path,
                    problem: format!("{}{problem}", self.place()),
                });
            }
            Err(e) => return Err(e),
        };
        self.stats.overflow_pages += u64::from(page.header.overflow);
        if page.header.flags == LEAF {
            self.stats.leaf_pages += 1;
            return self.leaf(&page.data, Leaf::Page(id), depth, last);
        }
        self.stats.branch_pages += 1;
        for i in 0..usize::from(page.header.count) {
            let child = layout::branch_element(&page.data, i)
                .map_err(|p| self.corrupt(Leaf::Page(id), p))?
                .child;
            if self.tree(child, depth + 1, last)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Visits the entries of one leaf page (`data`, header first) and walks the nested
    /// buckets they name.
    fn leaf(
        &mut self,
        data: &[u8],
        at: Leaf,
        depth: usize,
        last: &mut Option<Vec<u8>>,
    ) -> Result<ControlFlow<()>> {
        let header = PageHeader::decode(data).map_err(|p| self.corrupt(at, p))?;
        if let Leaf::Inline = at {
            if header.flags != LEAF {
                return Err(self.corrupt(
                    at,
                    format!("its page is a {} page", layout::kind_name(header.flags)),
                ));
            }
            header
                .check_count(data.len())
                .map_err(|p| self.corrupt(at, p))?;
        }
        for i in 0..usize::from(header.count) {
            let e = layout::leaf_element(data, i).map_err(|p| self.corrupt(at, p))?;
            if last.as_deref().is_some_and(|prev| prev >= e.key) {
                return Err(self.corrupt(at, format!("element {i}: keys out of order")));
            }
            *last = Some(e.key.to_vec());
            if !e.bucket {
                self.stats.values += 1;
                let entry = Entry {
                    bucket: &self.path,
                    key: e.key,
                    item: Item::Value(e.value),
                };
                if (self.visit)(&entry).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
                continue;
            }
            if let Leaf::Inline = at {
                return Err(self.corrupt(
                    at,
                    format!("element {i} is a nested bucket, which an inline bucket never holds"),
                ));
            }
            let root = layout::bucket_root(e.value)
                .map_err(|p| self.corrupt(at, format!("element {i}: {p}")))?;
            let kind = match root {
                BucketRoot::Inline(_) => BucketKind::Inline,
                BucketRoot::Pages(_) => BucketKind::Pages,
            };
            let entry = Entry {
                bucket: &self.path,
                key: e.key,
                item: Item::Bucket(kind),
            };
            if (self.visit)(&entry).is_break() {
                return Ok(ControlFlow::Break(()));
            }
            self.path.push(e.key.to_vec());
            let flow = self.bucket(root, depth + 1);
            self.path.pop();
            if flow?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Walks a nested bucket (whose name is last on `path`).
    fn bucket(&mut self, root: BucketRoot<'_>, depth: usize) -> Result<ControlFlow<()>> {
        let mut last = None;
        match root {
            BucketRoot::Pages(id) => {
                self.stats.page_buckets += 1;
                self.tree(id, depth, &mut last)
            }
            BucketRoot::Inline(page) => {
                self.stats.inline_buckets += 1;
                self.deeper(depth)?;
                self.leaf(page, Leaf::Inline, depth, &mut last)
            }
        }
    }

    fn deeper(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.db.corrupt(format!(
                "{}more than {MAX_DEPTH} levels of pages and buckets",
                self.place()
            )));
        }
        self.stats.depth = self.stats.depth.max(depth);
        Ok(())
    }

    fn corrupt(&self, at: Leaf, problem: Problem) -> Error {
        let page = match at {
            Leaf::Page(id) => format!("page {id}"),
            Leaf::Inline => "its inline page".into(),
        };
        self.db
            .corrupt(format!("{}{page}: {problem}", self.place()))
    }

    /// `bucket "artifact", ` for messages, or nothing in the root bucket.
    fn place(&self) -> String {
        if self.path.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self
            .path
            .iter()
            .map(|name| format!("{:?}", String::from_utf8_lossy(name)))
            .collect();
        format!("bucket {}, ", names.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use super::*;
    use cache_testkit::bbolt::{FileBuilder, Val, data, meta, reseal_meta};

    const PS: usize = 1024;

    /// One visited entry: bucket path, key, and the value or the bucket's kind.
    #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
    struct Seen {
        path: Vec<String>,
        key: String,
        what: String,
    }

    fn seen(path: &[&str], key: &str, what: &str) -> Seen {
        Seen {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            key: key.to_owned(),
            what: what.to_owned(),
        }
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn describe(e: &Entry<'_>) -> Seen {
        Seen {
            path: e.bucket.iter().map(|b| text(b)).collect(),
            key: text(e.key),
            what: match e.item {
                Item::Value(v) if v.len() > 64 && v.iter().all(|&b| b == v[0]) => {
                    format!("{} bytes of {}", v.len(), v[0] as char)
                }
                Item::Value(v) if v.len() > 64 => format!("{} mixed bytes", v.len()),
                Item::Value(v) => text(v),
                Item::Bucket(BucketKind::Inline) => "inline bucket".into(),
                Item::Bucket(BucketKind::Pages) => "bucket".into(),
            },
        }
    }

    /// Writes `bytes` to a file, opens and walks it.
    fn read(bytes: &[u8]) -> Result<(Vec<Seen>, WalkStats)> {
        let dir = tempfile::tempdir().unwrap();
        read_at(&dir.path().join("test.db"), bytes)
    }

    /// Writes `bytes` to `path`, opens and walks it. The file is overwritten in place:
    /// truncating it to nothing first would make some file systems flush it on close
    /// (ext4's `auto_da_alloc`), which costs milliseconds per round of the damage tests.
    fn read_at(path: &Path, bytes: &[u8]) -> Result<(Vec<Seen>, WalkStats)> {
        use std::io::Write;
        let mut f = File::options()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap();
        f.write_all(bytes).unwrap();
        f.set_len(bytes.len() as u64).unwrap();
        drop(f);
        let db = Db::open(path)?;
        let mut all = Vec::new();
        let stats = db.walk(&mut |e| {
            all.push(describe(e));
            ControlFlow::Continue(())
        })?;
        Ok((all, stats))
    }

    /// The page IDs of [`rich`]'s file.
    struct Ids {
        root: u64,
        blob_branch: u64,
        blob_leaves: [u64; 3],
        inner: u64,
    }

    /// A file with every structure: "artifact", an inline bucket; "blob", a bucket whose
    /// root is a branch over three leaves, the middle one holding a value over three
    /// overflow pages; "nested", a bucket holding a bucket in pages ("inner") that holds
    /// an inline bucket ("deep").
    fn rich() -> (Vec<u8>, Ids, Vec<Seen>) {
        let mut b = FileBuilder::new(PS);
        let key = |n: usize| format!("b{n:02}");
        let small = |n: usize| format!("{{\"n\":{n}}}");
        let leaf_of = |b: &mut FileBuilder, range: Range<usize>| {
            let keys: Vec<String> = range.clone().map(key).collect();
            let items: Vec<(&[u8], Val)> = keys
                .iter()
                .zip(range)
                .map(|(k, n)| {
                    let v = if n == 6 {
                        Val::Data(vec![b'x'; 3 * PS])
                    } else {
                        data(&small(n))
                    };
                    (k.as_bytes(), v)
                })
                .collect();
            b.leaf(&items)
        };
        let leaves = [
            leaf_of(&mut b, 1..6),
            leaf_of(&mut b, 6..8),
            leaf_of(&mut b, 8..11),
        ];
        let blob_branch = b.branch(&[
            (b"b01", leaves[0]),
            (b"b06", leaves[1]),
            (b"b08", leaves[2]),
        ]);
        let inner = b.leaf(&[
            (b"deep", Val::Inline(vec![(b"x".to_vec(), b"1".to_vec())])),
            (b"v", data("inner value")),
        ]);
        let nested = b.leaf(&[(b"inner", Val::Pages(inner)), (b"plain", data("p"))]);
        let root = b.leaf(&[
            (
                b"artifact",
                Val::Inline(vec![
                    (b"a1".to_vec(), b"{\"a\":1}".to_vec()),
                    (b"a2".to_vec(), b"{\"a\":2}".to_vec()),
                ]),
            ),
            (b"blob", Val::Pages(blob_branch)),
            (b"nested", Val::Pages(nested)),
        ]);
        let mut want = vec![
            seen(&[], "artifact", "inline bucket"),
            seen(&["artifact"], "a1", "{\"a\":1}"),
            seen(&["artifact"], "a2", "{\"a\":2}"),
            seen(&[], "blob", "bucket"),
        ];
        for n in 1..11 {
            let what = if n == 6 {
                format!("{} bytes of x", 3 * PS)
            } else {
                small(n)
            };
            want.push(seen(&["blob"], &key(n), &what));
        }
        want.extend([
            seen(&[], "nested", "bucket"),
            seen(&["nested"], "inner", "bucket"),
            seen(&["nested", "inner"], "deep", "inline bucket"),
            seen(&["nested", "inner", "deep"], "x", "1"),
            seen(&["nested", "inner"], "v", "inner value"),
            seen(&["nested"], "plain", "p"),
        ]);
        let ids = Ids {
            root,
            blob_branch,
            blob_leaves: leaves,
            inner,
        };
        (b.file(root), ids, want)
    }

    fn page(id: u64) -> Range<usize> {
        id as usize * PS..(id as usize + 1) * PS
    }

    fn put_u16(f: &mut [u8], at: usize, v: u16) {
        f[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u32(f: &mut [u8], at: usize, v: u32) {
        f[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn put_u64(f: &mut [u8], at: usize, v: u64) {
        f[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    /// Replaces the first `from` in `range` of `f` with `to` (same length).
    fn replace(f: &mut [u8], range: Range<usize>, from: &[u8], to: &[u8]) {
        let start = range.start;
        let at = f[range]
            .windows(from.len())
            .position(|w| w == from)
            .expect("the bytes to replace");
        f[start + at..start + at + to.len()].copy_from_slice(to);
    }

    /// Sets the root page of both meta pages.
    fn set_root(f: &mut [u8], root: u64) {
        for at in [0, PS] {
            put_u64(f, at + 32, root);
            reseal_meta(f, at);
        }
    }

    #[test]
    fn walks_every_structure_in_key_order() {
        let (file, _, want) = rich();
        let (got, stats) = read(&file).unwrap();
        assert_eq!(got, want);
        assert_eq!(
            stats,
            WalkStats {
                values: 15,
                inline_buckets: 2,
                page_buckets: 3,
                branch_pages: 1,
                leaf_pages: 6,
                overflow_pages: 3,
                depth: 4,
            }
        );
    }

    #[test]
    fn empty_databases_of_every_page_size_open() {
        for page_size in [1024, 4096, 16384, 65536] {
            let (got, stats) = read(&cache_testkit::trivy::empty_bbolt(page_size)).unwrap();
            assert!(got.is_empty());
            assert_eq!((stats.leaf_pages, stats.depth), (1, 1));
        }
    }

    #[test]
    fn the_valid_meta_with_the_higher_txid_is_used() {
        let mut b = FileBuilder::new(PS);
        let old = b.leaf(&[(b"old", Val::Inline(vec![]))]);
        let new = b.leaf(&[(b"new", Val::Inline(vec![]))]);
        let names = |file: &[u8]| read(file).unwrap().0[0].key.clone();
        assert_eq!(names(&b.finish([(old, 6), (new, 7)])), "new");
        assert_eq!(names(&b.finish([(new, 8), (old, 9)])), "old");

        // The newer one damaged: the older one is used, and the damage reported.
        let mut file = b.finish([(old, 6), (new, 7)]);
        file[PS + 70] ^= 1;
        assert_eq!(names(&file), "old");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), &file).unwrap();
        let db = Db::open(dir.path().join("f")).unwrap();
        assert_eq!(db.txid(), 6);
        let damage = db.damaged_meta().unwrap();
        assert!(
            damage.starts_with("meta page 1: checksum mismatch"),
            "{damage}"
        );

        // Both damaged: not a bbolt file, both reasons given.
        file[70] ^= 1;
        let msg = read(&file).unwrap_err().to_string();
        assert!(
            msg.contains("meta page 0: checksum mismatch")
                && msg.contains("meta page 1: at byte 1024: checksum mismatch"),
            "{msg}"
        );
    }

    #[test]
    fn the_page_size_is_found_when_meta_page_0_is_gone() {
        let mut b = FileBuilder::new(16384);
        let root = b.leaf(&[(b"only", Val::Inline(vec![(b"k".to_vec(), b"v".to_vec())]))]);
        let mut file = b.file(root);
        file[..16384].fill(0);
        let (got, _) = read(&file).unwrap();
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn meta_pages_that_are_not_bbolt_say_why() {
        let (file, _, _) = rich();
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        let both = |f: &mut Vec<u8>, at: usize, v: u32| {
            for m in [0, PS] {
                put_u32(f, m + at, v);
                reseal_meta(f, m);
            }
        };
        let mut f = file.clone();
        both(&mut f, 16, 0);
        cases.push((f, "no bbolt magic number (found 0x00000000)"));
        let mut f = file.clone();
        both(&mut f, 16, 0xEDDA_0CED);
        cases.push((f, "written on a big-endian machine"));
        let mut f = file.clone();
        both(&mut f, 20, 1);
        cases.push((f, "format version 1, not 2"));
        let mut f = file.clone();
        both(&mut f, 24, 512);
        cases.push((f, "page size 512 outside"));
        cases.push((Vec::new(), "the file has 0 bytes, too few for a meta page"));
        cases.push((vec![0; 79], "the file has 79 bytes"));
        cases.push((
            b"SQLite format 3\0".repeat(512),
            "meta page 0: no bbolt magic number",
        ));
        for (bytes, want) in cases {
            let err = read(&bytes).unwrap_err();
            assert!(matches!(err, Error::NotBbolt { .. }), "{err}");
            assert!(err.to_string().contains(want), "want {want:?}: {err}");
        }
    }

    #[test]
    fn a_second_meta_page_of_another_page_size_is_not_used() {
        let (mut file, _, want) = rich();
        put_u32(&mut file, PS + 24, 2048);
        reseal_meta(&mut file, PS);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), &file).unwrap();
        let db = Db::open(dir.path().join("f")).unwrap();
        assert_eq!((db.txid(), db.page_size()), (4, 1024));
        assert!(
            db.damaged_meta()
                .unwrap()
                .contains("page size 2048 differs")
        );
        assert_eq!(read(&file).unwrap().0, want);
    }

    /// Damages [`rich`]'s file with `damage` and expects a corrupt-file error containing
    /// `want`.
    fn check_corrupt(name: &str, damage: impl FnOnce(&mut Vec<u8>, &Ids), want: &str) {
        let (mut file, ids, _) = rich();
        damage(&mut file, &ids);
        match read(&file) {
            Err(e @ Error::Corrupt { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(want), "{name}: want {want:?} in: {msg}");
            }
            other => panic!("{name}: want a corrupt-file error, got {other:?}"),
        }
    }

    #[test]
    fn damaged_structures_are_corrupt_errors_naming_the_place() {
        // Element fields of leaf or branch element `i` of page `id`.
        let elem = |id: u64, i: usize, field: usize| page(id).start + 16 + 16 * i + 4 * field;
        check_corrupt(
            "root past the pages in use",
            |f, _| set_root(f, 999),
            "the root bucket's page 999 is not a page of the 13 in use",
        );
        check_corrupt(
            "root on a meta page",
            |f, _| set_root(f, 1),
            "the root bucket's page 1 is not a page",
        );
        check_corrupt(
            "child past the pages in use",
            |f, ids| put_u64(f, elem(ids.blob_branch, 1, 2), 999),
            "page reference points at page 999, past the 13 pages in use",
        );
        check_corrupt(
            "child on a meta page",
            |f, ids| put_u64(f, elem(ids.blob_branch, 1, 2), 0),
            "a page reference points at meta page 0",
        );
        check_corrupt(
            "child on the freelist",
            |f, ids| put_u64(f, elem(ids.blob_branch, 1, 2), 2),
            "page 2: a freelist page where a branch or leaf page belongs",
        );
        check_corrupt(
            "a page labelled as another",
            |f, ids| put_u64(f, page(ids.blob_leaves[2]).start, 77),
            "bucket \"blob\", page 8: it is labelled page 77",
        );
        check_corrupt(
            "a zeroed page",
            |f, ids| f[page(ids.blob_leaves[0])].fill(0),
            "it is labelled page 0",
        );
        check_corrupt(
            "more elements than fit",
            |f, ids| put_u16(f, page(ids.blob_leaves[0]).start + 10, 300),
            "300 elements need 4816 bytes, but the page has 1024",
        );
        check_corrupt(
            "a key past the page",
            |f, ids| put_u32(f, elem(ids.blob_leaves[0], 0, 1), 5000),
            "bucket \"blob\", page 3: element 0's key ends at byte 5019, past the page's 1024 bytes",
        );
        check_corrupt(
            "a value past its overflow pages",
            |f, ids| put_u32(f, elem(ids.blob_leaves[1], 0, 3), 4 * PS as u32),
            "element 0's value ends at byte",
        );
        check_corrupt(
            "overflow past the pages in use",
            |f, ids| put_u32(f, page(ids.blob_leaves[2]).start + 12, 1000),
            "it continues over 1000 more pages, past the 13 pages in use",
        );
        check_corrupt(
            "a cycle",
            |f, ids| put_u64(f, elem(ids.blob_branch, 2, 2), ids.blob_branch),
            "reached a second time",
        );
        check_corrupt(
            "a page two parents share",
            |f, ids| put_u64(f, elem(ids.blob_branch, 2, 2), ids.blob_leaves[0]),
            "reached a second time",
        );
        check_corrupt(
            "an overflow page that is also a child",
            |f, ids| put_u64(f, elem(ids.blob_branch, 2, 2), ids.blob_leaves[1] + 1),
            "page 5: it is labelled page",
        );
        check_corrupt(
            "keys out of order",
            |f, ids| replace(f, page(ids.blob_leaves[0]), b"b02", b"b00"),
            "bucket \"blob\", page 3: element 1: keys out of order",
        );
        check_corrupt(
            "a key repeated",
            |f, ids| replace(f, page(ids.blob_leaves[0]), b"b02", b"b01"),
            "keys out of order",
        );
        check_corrupt(
            "keys out of order across pages",
            |f, ids| replace(f, page(ids.blob_leaves[2]), b"b08", b"b05"),
            "page 8: element 0: keys out of order",
        );
        check_corrupt(
            "unknown element flags",
            |f, ids| put_u32(f, elem(ids.blob_leaves[0], 0, 0), 4),
            "element 0 has unknown flags 0x4",
        );
        check_corrupt(
            "an inline bucket too short for its page",
            |f, ids| put_u32(f, elem(ids.root, 0, 3), 20),
            "an inline bucket value of 20 bytes, too short to hold its page",
        );
        check_corrupt(
            "an inline page of the wrong kind",
            |f, ids| {
                replace(
                    f,
                    page(ids.root),
                    &[2, 0, 2, 0, 0, 0, 0, 0],
                    &[1, 0, 2, 0, 0, 0, 0, 0],
                )
            },
            "bucket \"artifact\", its inline page: its page is a branch page",
        );
        check_corrupt(
            "an inline page with more elements than fit",
            |f, ids| {
                replace(
                    f,
                    page(ids.root),
                    &[2, 0, 2, 0, 0, 0, 0, 0],
                    &[2, 0, 9, 0, 0, 0, 0, 0],
                )
            },
            "bucket \"artifact\", its inline page: 9 elements need",
        );
        check_corrupt(
            "an inline bucket's key past its page",
            |f, ids| {
                let elem = [[0, 0, 0, 0], [16, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]].concat();
                let long = [[0, 0, 0, 0], [16, 0, 0, 0], [200, 0, 0, 0], [1, 0, 0, 0]].concat();
                replace(f, page(ids.inner), &elem, &long)
            },
            "bucket \"nested\"/\"inner\"/\"deep\", its inline page: element 0's key ends at byte 232",
        );
        check_corrupt(
            "truncated",
            |f, _| f.truncate(f.len() - PS),
            "truncated: the meta page counts 13 pages of 1024 bytes, but the file has only 12288 bytes",
        );
        check_corrupt(
            "truncated mid-page",
            |f, _| f.truncate(f.len() - 10),
            "truncated",
        );
    }

    #[test]
    fn bucket_values_that_do_not_fit_are_corrupt() {
        let check = |val: Val, want: &str| {
            let mut b = FileBuilder::new(PS);
            let root = b.leaf(&[(b"b", val)]);
            let msg = read(&b.file(root)).unwrap_err().to_string();
            assert!(msg.contains(want), "want {want:?}: {msg}");
        };
        check(
            Val::Raw(1, vec![1, 2, 3]),
            "element 0: a bucket value of 3 bytes, shorter",
        );
        // An inline bucket whose page holds a nested bucket.
        let mut inner = FileBuilder::new(PS);
        let sub = inner.leaf(&[(b"sub", Val::Inline(vec![]))]);
        let sub_page = inner.file(sub)[sub as usize * PS..(sub as usize + 1) * PS].to_vec();
        let mut value = vec![0u8; 16];
        value.extend_from_slice(&sub_page[..16 + 16 + 3 + 32]);
        check(
            Val::Raw(1, value),
            "bucket \"b\", its inline page: element 0 is a nested bucket",
        );
    }

    #[test]
    fn empty_branch_pages_and_endless_depth_are_corrupt() {
        let mut b = FileBuilder::new(PS);
        let empty = b.branch(&[]);
        let msg = read(&b.file(empty)).unwrap_err().to_string();
        assert!(msg.contains("a branch page without elements"), "{msg}");

        let mut b = FileBuilder::new(PS);
        let mut top = b.leaf(&[(b"k", data("v"))]);
        for _ in 0..MAX_DEPTH {
            top = b.branch(&[(b"k", top)]);
        }
        let msg = read(&b.file(top)).unwrap_err().to_string();
        assert!(
            msg.contains("more than 64 levels of pages and buckets"),
            "{msg}"
        );
        // One level less is fine.
        let mut b = FileBuilder::new(PS);
        let mut top = b.leaf(&[(b"k", data("v"))]);
        for _ in 1..MAX_DEPTH {
            top = b.branch(&[(b"k", top)]);
        }
        assert_eq!(read(&b.file(top)).unwrap().1.depth, MAX_DEPTH);
    }

    #[test]
    fn a_visitor_can_stop_the_walk() {
        let (file, _, want) = rich();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), &file).unwrap();
        let db = Db::open(dir.path().join("f")).unwrap();
        for stop_after in [1, 2, 5, 16] {
            let mut got = Vec::new();
            db.walk(&mut |e| {
                got.push(describe(e));
                if got.len() == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
            assert_eq!(got, want[..stop_after]);
        }
    }

    #[test]
    fn files_are_never_written_and_writers_are_detected() {
        let (file, _, _) = rich();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, &file).unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        {
            let db = Db::open(&path).unwrap();
            db.walk(&mut |_| ControlFlow::Continue(())).unwrap();
            // Other readers may read at the same time.
            Db::open(&path).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), file);
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );

        // A writer (bbolt locks its file exclusively while it has it open for writing).
        let writer = File::options().read(true).write(true).open(&path).unwrap();
        writer.lock().unwrap();
        let err = Db::open(&path).unwrap_err();
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(
            err.to_string().contains("is locked by another process"),
            "{err}"
        );
        drop(writer);
        Db::open(&path).unwrap();
    }

    #[test]
    fn paths_that_are_not_files_fail_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let err = Db::open(dir.path()).unwrap_err();
        assert!(matches!(err, Error::NotBbolt { .. }), "{err}");
        assert!(
            err.to_string()
                .ends_with("is not a bbolt database: not a regular file")
        );
        let missing = dir.path().join("missing.db");
        let err = Db::open(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { action: "open", .. }), "{err}");
        assert!(!err.is_bad_file());
        assert!(
            err.to_string()
                .starts_with(&format!("cannot open {}: ", missing.display()))
        );
    }

    /// A small deterministic generator for the damage tests (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
        }
    }

    /// Random bytes changed anywhere — headers, elements, keys, values, meta fields with
    /// their checksums resealed — never panic or hang: each file reads, or fails with an
    /// error.
    #[test]
    fn random_damage_never_panics() {
        let (file, _, _) = rich();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.db");
        let mut rng = Rng(0x5eed);
        let (mut ok, mut failed) = (0, 0);
        for round in 0..3000 {
            let mut f = file.clone();
            for _ in 0..1 + rng.below(4) {
                // Half the changes go to the first 64 bytes of a page, where the headers
                // and elements are.
                let at = if rng.below(2) == 0 {
                    rng.below(f.len() / PS) * PS + rng.below(64)
                } else {
                    rng.below(f.len())
                };
                f[at] = rng.below(256) as u8;
            }
            if round % 3 == 0 {
                // Meta fields changed under a valid checksum.
                reseal_meta(&mut f, 0);
                reseal_meta(&mut f, PS);
            }
            match read_at(&path, &f) {
                Ok(_) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        assert!(ok > 100 && failed > 100, "ok {ok}, failed {failed}");
    }

    /// Whole pages zeroed, copied over others or cut off give an error or entries that
    /// were in the file, never others. Overflow pages are not damaged here: they hold
    /// nothing but value bytes, and bbolt keeps no checksum of values.
    #[test]
    fn structural_damage_gives_an_error_or_a_subset() {
        let (file, ids, want) = rich();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.db");
        let pages = file.len() / PS;
        let overflow = ids.blob_leaves[1] + 1..ids.blob_leaves[1] + 4;
        let targets: Vec<u64> = (0..pages as u64)
            .filter(|p| !overflow.contains(p))
            .collect();
        let mut rng = Rng(0xbb01);
        let mut subsets = 0;
        for _ in 0..1000 {
            let mut f = file.clone();
            let target = targets[rng.below(targets.len())];
            match rng.below(3) {
                0 => f[page(target)].fill(0),
                1 => f.copy_within(page(rng.below(pages) as u64), page(target).start),
                _ => f.truncate(rng.below(file.len())),
            }
            if let Ok((got, _)) = read_at(&path, &f) {
                subsets += 1;
                for e in &got {
                    assert!(want.contains(e), "{e:?} was not in the file");
                }
            }
        }
        assert!(
            subsets > 0,
            "some damage (to the freelist, one meta page) is harmless"
        );
    }

    #[test]
    fn meta_builder_matches_the_reference_layout() {
        // The builder's meta page is the layout cache-testkit writes for empty databases.
        let empty = cache_testkit::trivy::empty_bbolt(4096);
        assert_eq!(&empty[..80], &meta(4096, 3, 4, 0)[..]);
    }
}
