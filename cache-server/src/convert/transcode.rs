//! The fast path of `PutBlob`: a protobuf `PutBlobRequest` written straight into the
//! blob document the server stores, without building the message or the document.
//!
//! The general path decodes the request into owned messages (`prost`: one `String` per
//! string field, some 600 for a 40-package layer), converts them into a
//! [`cache_core::BlobInfo`] (the package fields the document does not model become JSON
//! maps) and serializes that. Here the request is read in place — strings are borrowed
//! from the body and checked for UTF-8 — and the document is written field by field in
//! the order and shape serde writes the general path's document, so both paths store the
//! same bytes (the oracle tests in `tests/convert.rs` and the `put-blob` fuzz target
//! compare them on every input).
//!
//! The fast path covers what layers of images carry: the OS, the repository, package
//! databases, applications and every package field, whiteouts, digests, size and
//! created-by. A request with anything else — misconfigurations, secrets, licenses,
//! custom resources, build information or crypto assets of the layer, a field this
//! version does not know, a message field sent twice (which protobuf merges), a wire type
//! that does not fit its field, bytes that are not protobuf or strings that are not
//! UTF-8 — is not transcoded ([`put_blob_request`] answers `None`) and takes the general
//! path, which also words every error.

use std::io::Write as _;

use super::relationship_name;

/// A `PutBlobRequest` transcoded by [`put_blob_request`].
#[derive(Debug, PartialEq, Eq)]
pub struct TranscodedBlob<'a> {
    /// The blob's cache ID as sent (not yet validated).
    pub diff_id: &'a str,
    /// The document to store: the bytes the general path stores for the same request.
    pub document: Vec<u8>,
}

/// Transcodes a protobuf `PutBlobRequest` into the blob document to store, or `None`
/// when the request needs the general path (see the module documentation).
pub fn put_blob_request(body: &[u8]) -> Option<TranscodedBlob<'_>> {
    let mut diff_id = "";
    let mut blob = None;
    let mut fields = Fields::new(body);
    while let Some((tag, value)) = fields.next().ok()? {
        match tag {
            1 => diff_id = value.str().ok()?,
            3 => once(&mut blob, Blob::read(value.bytes().ok()?).ok()?).ok()?,
            _ => return None,
        }
    }
    let blob = blob?;
    // JSON keys make the document larger than the protobuf (some 1.6× for packages).
    let mut out = Vec::with_capacity(2 * body.len() + 256);
    blob.write(&mut out).ok()?;
    Some(TranscodedBlob {
        diff_id,
        document: out,
    })
}

/// Why a request is not transcoded; it then takes the general path.
#[derive(Debug)]
struct NotHere;

type Result<T, E = NotHere> = std::result::Result<T, E>;

// ---- Reading protobuf in place ----------------------------------------------------------

/// A field's value: a varint or a length-delimited run of bytes (the only wire types the
/// handled messages use).
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Value<'a> {
    fn bytes(self) -> Result<&'a [u8]> {
        match self {
            Value::Bytes(b) => Ok(b),
            Value::Varint(_) => Err(NotHere),
        }
    }

    fn str(self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| NotHere)
    }

    /// A string field, checked for UTF-8 and for whether JSON escapes any of it, in one
    /// pass for the usual string (ASCII with nothing to escape).
    fn text(self) -> Result<Text<'a>> {
        let bytes = self.bytes()?;
        // No short-circuit, so the check runs over whole words at a time.
        let plain = bytes.iter().fold(true, |ok, &b| {
            ok & (0x20..0x80).contains(&b) & (b != b'"') & (b != b'\\')
        });
        if !plain {
            std::str::from_utf8(bytes).map_err(|_| NotHere)?;
        }
        Ok(Text { bytes, plain })
    }

    fn varint(self) -> Result<u64> {
        match self {
            Value::Varint(v) => Ok(v),
            Value::Bytes(_) => Err(NotHere),
        }
    }

    // Truncations as protobuf (and prost) read these types.
    #[allow(clippy::cast_possible_truncation)]
    fn int32(self) -> Result<i32> {
        self.varint().map(|v| v as i32)
    }

    #[allow(clippy::cast_possible_wrap)]
    fn int64(self) -> Result<i64> {
        self.varint().map(|v| v as i64)
    }

    fn bool(self) -> Result<bool> {
        self.varint().map(|v| v != 0)
    }
}

/// A string field's UTF-8 bytes, borrowed from the request; `plain` when it is ASCII
/// with nothing JSON escapes (written as it is).
#[derive(Clone, Copy)]
struct Text<'a> {
    bytes: &'a [u8],
    plain: bool,
}

impl Default for Text<'_> {
    fn default() -> Self {
        Text {
            bytes: &[],
            plain: true,
        }
    }
}

impl Text<'_> {
    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// The fields of one message, in wire order.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Fields { buf }
    }

    /// The next field number and value; `None` at the end of the message.
    fn next(&mut self) -> Result<Option<(u32, Value<'a>)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| NotHere)?;
        if tag == 0 {
            return Err(NotHere);
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| NotHere)?;
                if len > self.buf.len() {
                    return Err(NotHere);
                }
                let (value, rest) = self.buf.split_at(len);
                self.buf = rest;
                Value::Bytes(value)
            }
            _ => return Err(NotHere),
        };
        Ok(Some((tag, value)))
    }

    /// A base-128 varint of at most ten bytes whose value fits 64 bits.
    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // Field keys and the lengths of strings and packages are one or two bytes.
        match *self.buf {
            [b0, ref rest @ ..] if b0 < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b0))
            }
            [b0, b1, ref rest @ ..] if b1 < 0x80 => {
                self.buf = rest;
                Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7)
            }
            _ => self.long_varint(),
        }
    }

    fn long_varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            if i == 9 && byte > 1 {
                return Err(NotHere);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.buf = self.buf.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(NotHere)
    }
}

/// Sets a singular message field, refusing a second occurrence (protobuf would merge the
/// two; the general path does that).
fn once<T>(slot: &mut Option<T>, value: T) -> Result<()> {
    if slot.is_some() {
        return Err(NotHere);
    }
    *slot = Some(value);
    Ok(())
}

// ---- The handled messages, borrowed -----------------------------------------------------

#[derive(Default)]
struct Blob<'a> {
    schema_version: i32,
    os: Option<Os<'a>>,
    repository: Option<Repository<'a>>,
    /// Package databases and applications, still encoded: they are read while written,
    /// one package at a time.
    package_infos: Vec<&'a [u8]>,
    applications: Vec<&'a [u8]>,
    opaque_dirs: Vec<Text<'a>>,
    whiteout_files: Vec<Text<'a>>,
    digest: Text<'a>,
    diff_id: Text<'a>,
    size: i64,
    created_by: Text<'a>,
}

impl<'a> Blob<'a> {
    fn read(buf: &'a [u8]) -> Result<Self> {
        let mut b = Blob::default();
        let mut fields = Fields::new(buf);
        while let Some((tag, v)) = fields.next()? {
            match tag {
                1 => b.schema_version = v.int32()?,
                2 => once(&mut b.os, Os::read(v.bytes()?)?)?,
                3 => b.package_infos.push(v.bytes()?),
                4 => b.applications.push(v.bytes()?),
                5 => b.opaque_dirs.push(v.text()?),
                6 => b.whiteout_files.push(v.text()?),
                7 => b.digest = v.text()?,
                8 => b.diff_id = v.text()?,
                11 => once(&mut b.repository, Repository::read(v.bytes()?)?)?,
                14 => b.size = v.int64()?,
                15 => b.created_by = v.text()?,
                _ => return Err(NotHere),
            }
        }
        Ok(b)
    }

    /// Writes the document, reading the packages on the way.
    fn write(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut o = Obj::open(out);
        o.int("SchemaVersion", i64::from(self.schema_version));
        o.int_nz("Size", self.size);
        o.text_nz("Digest", self.digest);
        o.text_nz("DiffID", self.diff_id);
        o.text_nz("CreatedBy", self.created_by);
        o.texts_nz("OpaqueDirs", &self.opaque_dirs);
        o.texts_nz("WhiteoutFiles", &self.whiteout_files);
        // An OS with nothing in it is no OS (the reference's `omitzero`).
        if let Some(os) = self.os.as_ref().filter(|os| !os.is_empty()) {
            os.write(o.key("OS"));
        }
        if let Some(r) = &self.repository {
            let mut ro = Obj::open(o.key("Repository"));
            ro.text_nz("Family", r.family);
            ro.text_nz("Release", r.release);
            ro.close();
        }
        let mut package = Package::default();
        if !self.package_infos.is_empty() {
            let mut list = List::open(o.key("PackageInfos"));
            for info in &self.package_infos {
                PackageInfo::transcode(info, &mut package, list.item())?;
            }
            list.close();
        }
        if !self.applications.is_empty() {
            let mut list = List::open(o.key("Applications"));
            for app in &self.applications {
                Application::transcode(app, &mut package, list.item())?;
            }
            list.close();
        }
        o.close();
        Ok(())
    }
}

#[derive(Default)]
struct Os<'a> {
    family: Text<'a>,
    name: Text<'a>,
    eosl: bool,
    extended: bool,
    supplier: Text<'a>,
}

impl<'a> Os<'a> {
    fn read(buf: &'a [u8]) -> Result<Self> {
        let mut os = Os::default();
        let mut fields = Fields::new(buf);
        while let Some((tag, v)) = fields.next()? {
            match tag {
                1 => os.family = v.text()?,
                2 => os.name = v.text()?,
                3 => os.eosl = v.bool()?,
                4 => os.extended = v.bool()?,
                5 => os.supplier = v.text()?,
                _ => return Err(NotHere),
            }
        }
        Ok(os)
    }

    fn is_empty(&self) -> bool {
        self.family.is_empty()
            && self.name.is_empty()
            && !self.eosl
            && !self.extended
            && self.supplier.is_empty()
    }

    fn write(&self, out: &mut Vec<u8>) {
        let mut o = Obj::open(out);
        o.text_nz("Family", self.family);
        o.text_nz("Name", self.name);
        o.true_only("Eosl", self.eosl);
        // The fields the document does not model, in their (sorted) map order.
        o.text_nz("Supplier", self.supplier);
        o.true_only("extended", self.extended);
        o.close();
    }
}

#[derive(Default)]
struct Repository<'a> {
    family: Text<'a>,
    release: Text<'a>,
}

impl<'a> Repository<'a> {
    fn read(buf: &'a [u8]) -> Result<Self> {
        let mut r = Repository::default();
        let mut fields = Fields::new(buf);
        while let Some((tag, v)) = fields.next()? {
            match tag {
                1 => r.family = v.text()?,
                2 => r.release = v.text()?,
                _ => return Err(NotHere),
            }
        }
        Ok(r)
    }
}

/// An OS package database (`PackageInfo`): its path and its packages.
struct PackageInfo;

impl PackageInfo {
    /// Reads the encoded message `buf` and writes it as a document object.
    fn transcode<'a>(buf: &'a [u8], package: &mut Package<'a>, out: &mut Vec<u8>) -> Result<()> {
        let mut file_path = Text::default();
        let mut packages = Vec::new();
        let mut fields = Fields::new(buf);
        while let Some((tag, v)) = fields.next()? {
            match tag {
                1 => file_path = v.text()?,
                2 => packages.push(v.bytes()?),
                _ => return Err(NotHere),
            }
        }
        let mut o = Obj::open(out);
        o.text_nz("FilePath", file_path);
        packages_nz(&mut o, &packages, package)?;
        o.close();
        Ok(())
    }
}

/// The packages of one lock file or package directory (`Application`).
struct Application;

impl Application {
    /// Reads the encoded message `buf` and writes it as a document object.
    fn transcode<'a>(buf: &'a [u8], package: &mut Package<'a>, out: &mut Vec<u8>) -> Result<()> {
        let (mut r#type, mut file_path) = (Text::default(), Text::default());
        let mut packages = Vec::new();
        let mut fields = Fields::new(buf);
        while let Some((tag, v)) = fields.next()? {
            match tag {
                1 => r#type = v.text()?,
                2 => file_path = v.text()?,
                3 => packages.push(v.bytes()?),
                _ => return Err(NotHere),
            }
        }
        let mut o = Obj::open(out);
        o.text("Type", r#type);
        o.text_nz("FilePath", file_path);
        packages_nz(&mut o, &packages, package)?;
        o.close();
        Ok(())
    }
}

/// Writes `"Packages":[…]` from the encoded packages unless there are none, each read
/// into `package` (whose lists keep their capacity from one package to the next).
fn packages_nz<'a>(
    o: &mut Obj<'_>,
    packages: &[&'a [u8]],
    package: &mut Package<'a>,
) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let mut list = List::open(o.key("Packages"));
    for buf in packages {
        package.read(buf)?;
        package.write(list.item());
    }
    list.close();
    Ok(())
}

#[derive(Default)]
struct Identifier<'a> {
    purl: Text<'a>,
    bom_ref: Text<'a>,
    uid: Text<'a>,
}

#[derive(Default)]
struct Layer<'a> {
    digest: Text<'a>,
    diff_id: Text<'a>,
    created_by: Text<'a>,
    size: i64,
}

impl Layer<'_> {
    fn is_empty(&self) -> bool {
        self.digest.is_empty()
            && self.diff_id.is_empty()
            && self.created_by.is_empty()
            && self.size == 0
    }
}

#[derive(Default)]
struct BuildInfo<'a> {
    content_sets: Vec<Text<'a>>,
    nvr: Text<'a>,
    arch: Text<'a>,
}

#[derive(Default)]
struct Package<'a> {
    id: Text<'a>,
    name: Text<'a>,
    version: Text<'a>,
    release: Text<'a>,
    epoch: i32,
    identifier: Option<Identifier<'a>>,
    arch: Text<'a>,
    src_name: Text<'a>,
    src_version: Text<'a>,
    src_release: Text<'a>,
    src_epoch: i32,
    licenses: Vec<Text<'a>>,
    locations: Vec<(i32, i32)>,
    layer: Option<Layer<'a>>,
    file_path: Text<'a>,
    depends_on: Vec<Text<'a>>,
    digest: Text<'a>,
    dev: bool,
    indirect: bool,
    maintainer: Text<'a>,
    relationship: i32,
    analyzed_by: Text<'a>,
    repository_class: Option<Text<'a>>,
    modularitylabel: Text<'a>,
    build_info: Option<BuildInfo<'a>>,
    installed_files: Vec<Text<'a>>,
}

impl<'a> Package<'a> {
    /// Reads the encoded package `buf` into `self`, replacing what it held.
    fn read(&mut self, buf: &'a [u8]) -> Result<()> {
        let lists = |v: &mut Vec<Text<'a>>| {
            let mut v = std::mem::take(v);
            v.clear();
            v
        };
        let mut locations = std::mem::take(&mut self.locations);
        locations.clear();
        let mut content_sets = self
            .build_info
            .take()
            .map(|b| b.content_sets)
            .unwrap_or_default();
        content_sets.clear();
        *self = Package {
            licenses: lists(&mut self.licenses),
            depends_on: lists(&mut self.depends_on),
            installed_files: lists(&mut self.installed_files),
            locations,
            ..Package::default()
        };
        let p = self;
        let mut fields = Fields::new(buf);
        while let Some((tag, v)) = fields.next()? {
            match tag {
                1 => p.name = v.text()?,
                2 => p.version = v.text()?,
                3 => p.release = v.text()?,
                4 => p.epoch = v.int32()?,
                5 => p.arch = v.text()?,
                6 => p.src_name = v.text()?,
                7 => p.src_version = v.text()?,
                8 => p.src_release = v.text()?,
                9 => p.src_epoch = v.int32()?,
                11 => once(&mut p.layer, read_layer(v.bytes()?)?)?,
                12 => p.file_path = v.text()?,
                13 => p.id = v.text()?,
                14 => p.depends_on.push(v.text()?),
                15 => p.licenses.push(v.text()?),
                16 => p.digest = v.text()?,
                17 => p.dev = v.bool()?,
                18 => p.indirect = v.bool()?,
                19 => once(&mut p.identifier, read_identifier(v.bytes()?)?)?,
                20 => p.locations.push(read_location(v.bytes()?)?),
                21 => p.maintainer = v.text()?,
                22 => p.relationship = v.int32()?,
                23 => p.analyzed_by = v.text()?,
                24 => once(
                    &mut p.repository_class,
                    read_package_repository(v.bytes()?)?,
                )?,
                25 => p.modularitylabel = v.text()?,
                26 => {
                    let sets = std::mem::take(&mut content_sets);
                    once(&mut p.build_info, read_build_info(v.bytes()?, sets)?)?;
                }
                27 => p.installed_files.push(v.text()?),
                _ => return Err(NotHere),
            }
        }
        Ok(())
    }

    fn write(&self, out: &mut Vec<u8>) {
        let mut o = Obj::open(out);
        o.text_nz("ID", self.id);
        o.text_nz("Name", self.name);
        // An identifier with nothing in it is none (the reference's `omitzero`).
        if let Some(id) = self
            .identifier
            .as_ref()
            .filter(|id| !(id.purl.is_empty() && id.uid.is_empty() && id.bom_ref.is_empty()))
        {
            let mut io = Obj::open(o.key("Identifier"));
            io.text_nz("PURL", id.purl);
            io.text_nz("UID", id.uid);
            io.text_nz("BOMRef", id.bom_ref);
            io.close();
        }
        o.text_nz("Version", self.version);
        o.text_nz("Release", self.release);
        o.int_nz("Epoch", i64::from(self.epoch));
        o.text_nz("Arch", self.arch);
        o.true_only("Dev", self.dev);
        o.text_nz("SrcName", self.src_name);
        o.text_nz("SrcVersion", self.src_version);
        o.text_nz("SrcRelease", self.src_release);
        o.int_nz("SrcEpoch", i64::from(self.src_epoch));
        o.texts_nz("Licenses", &self.licenses);
        o.text_nz("Maintainer", self.maintainer);
        o.true_only("Indirect", self.indirect);
        if self.relationship != 0 {
            o.str("Relationship", relationship_name(self.relationship));
        }
        o.texts_nz("DependsOn", &self.depends_on);
        o.text_nz("FilePath", self.file_path);
        o.text_nz("Digest", self.digest);
        o.texts_nz("InstalledFiles", &self.installed_files);
        o.text_nz("AnalyzedBy", self.analyzed_by);
        // The fields the document does not model, in their (sorted) map order.
        if let Some(b) = &self.build_info {
            let mut bo = Obj::open(o.key("BuildInfo"));
            bo.text_nz("Arch", b.arch);
            bo.texts_nz("ContentSets", &b.content_sets);
            bo.text_nz("Nvr", b.nvr);
            bo.close();
        }
        if let Some(l) = self.layer.as_ref().filter(|l| !l.is_empty()) {
            let mut lo = Obj::open(o.key("Layer"));
            lo.text_nz("CreatedBy", l.created_by);
            lo.text_nz("DiffID", l.diff_id);
            lo.text_nz("Digest", l.digest);
            lo.int_nz("Size", l.size);
            lo.close();
        }
        if !self.locations.is_empty() {
            let mut list = List::open(o.key("Locations"));
            for &(start, end) in &self.locations {
                let mut lo = Obj::open(list.item());
                lo.int_nz("EndLine", i64::from(end));
                lo.int_nz("StartLine", i64::from(start));
                lo.close();
            }
            list.close();
        }
        o.text_nz("Modularitylabel", self.modularitylabel);
        if let Some(class) = self.repository_class.filter(|c| !c.is_empty()) {
            let mut ro = Obj::open(o.key("Repository"));
            ro.text("Class", class);
            ro.close();
        }
        o.close();
    }
}

fn read_layer(buf: &[u8]) -> Result<Layer<'_>> {
    let mut l = Layer::default();
    let mut fields = Fields::new(buf);
    while let Some((tag, v)) = fields.next()? {
        match tag {
            1 => l.digest = v.text()?,
            2 => l.diff_id = v.text()?,
            3 => l.created_by = v.text()?,
            4 => l.size = v.int64()?,
            _ => return Err(NotHere),
        }
    }
    Ok(l)
}

fn read_identifier(buf: &[u8]) -> Result<Identifier<'_>> {
    let mut id = Identifier::default();
    let mut fields = Fields::new(buf);
    while let Some((tag, v)) = fields.next()? {
        match tag {
            1 => id.purl = v.text()?,
            2 => id.bom_ref = v.text()?,
            3 => id.uid = v.text()?,
            _ => return Err(NotHere),
        }
    }
    Ok(id)
}

fn read_location(buf: &[u8]) -> Result<(i32, i32)> {
    let (mut start, mut end) = (0, 0);
    let mut fields = Fields::new(buf);
    while let Some((tag, v)) = fields.next()? {
        match tag {
            1 => start = v.int32()?,
            2 => end = v.int32()?,
            _ => return Err(NotHere),
        }
    }
    Ok((start, end))
}

fn read_package_repository(buf: &[u8]) -> Result<Text<'_>> {
    let mut class = Text::default();
    let mut fields = Fields::new(buf);
    while let Some((tag, v)) = fields.next()? {
        match tag {
            1 => class = v.text()?,
            _ => return Err(NotHere),
        }
    }
    Ok(class)
}

fn read_build_info<'a>(buf: &'a [u8], content_sets: Vec<Text<'a>>) -> Result<BuildInfo<'a>> {
    let mut b = BuildInfo {
        content_sets,
        ..BuildInfo::default()
    };
    let mut fields = Fields::new(buf);
    while let Some((tag, v)) = fields.next()? {
        match tag {
            1 => b.content_sets.push(v.text()?),
            2 => b.nvr = v.text()?,
            3 => b.arch = v.text()?,
            _ => return Err(NotHere),
        }
    }
    Ok(b)
}

// ---- Writing JSON as serde_json does ----------------------------------------------------

/// One JSON object being written: `{`, then `"key":value` pairs separated by commas.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// Starts the pair `key`; its value is written next into the returned buffer.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        // Keys are this module's own names: nothing to escape.
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        string(self.key(key), value);
    }

    fn text(&mut self, key: &str, value: Text<'_>) {
        text(self.key(key), value);
    }

    fn text_nz(&mut self, key: &str, value: Text<'_>) {
        if !value.is_empty() {
            self.text(key, value);
        }
    }

    fn texts_nz(&mut self, key: &str, values: &[Text<'_>]) {
        if values.is_empty() {
            return;
        }
        let mut list = List::open(self.key(key));
        for v in values {
            text(list.item(), *v);
        }
        list.close();
    }

    fn int(&mut self, key: &str, value: i64) {
        let out = self.key(key);
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{value}");
    }

    fn int_nz(&mut self, key: &str, value: i64) {
        if value != 0 {
            self.int(key, value);
        }
    }

    fn true_only(&mut self, key: &str, value: bool) {
        if value {
            self.key(key).extend_from_slice(b"true");
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// One JSON array being written.
struct List<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> List<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'[');
        List { out, first: true }
    }

    /// Starts the next item; it is written next into the returned buffer.
    fn item(&mut self) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out
    }

    fn close(self) {
        self.out.push(b']');
    }
}

/// Writes a string field as a JSON string with serde_json's escaping: a plain one is
/// copied in one piece, the others go through serde_json itself.
fn text(out: &mut Vec<u8>, t: Text<'_>) {
    if t.plain {
        out.reserve(t.bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(t.bytes);
        out.push(b'"');
    } else if let Ok(s) = std::str::from_utf8(t.bytes) {
        // Checked when read, so always here. Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Writes a JSON string with serde_json's escaping: strings with nothing to escape (all
/// but a few) are copied in one piece, the others go through serde_json itself.
fn string(out: &mut Vec<u8>, s: &str) {
    // No short-circuit, so the check runs over whole words at a time.
    let plain = s
        .bytes()
        .fold(true, |ok, b| ok & (b >= 0x20 && b != b'"' && b != b'\\'));
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "quote\"",
            "back\\slash",
            "tab\t",
            "\u{1}\u{1f}",
            "é\u{7f}",
        ] {
            let mut out = Vec::new();
            string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
            let mut out = Vec::new();
            text(&mut out, Value::Bytes(s.as_bytes()).text().ok().unwrap());
            assert_eq!(
                out,
                serde_json::to_vec(s).unwrap(),
                "{s:?} read from protobuf"
            );
        }
        // Not UTF-8, also after a plain ASCII start.
        assert!(Value::Bytes(b"\xff").text().is_err());
        assert!(Value::Bytes(b"plain\xc3").text().is_err());
    }

    #[test]
    fn varints_are_read_as_protobuf_reads_them() {
        let read = |b: &[u8]| Fields::new(b).varint().ok();
        assert_eq!(read(&[0x00]), Some(0));
        assert_eq!(read(&[0x96, 0x01]), Some(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read(&max), Some(u64::MAX));
        // An eleventh byte, a tenth byte over 1, a varint cut off.
        let mut long = max.to_vec();
        long[9] = 0x81;
        long.push(0x00);
        assert_eq!(read(&long), None);
        assert_eq!(
            read(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            None
        );
        assert_eq!(read(&[0x80]), None);
    }

    #[test]
    fn requests_outside_the_fast_path_are_left_to_the_general_one() {
        // Field 3 (the blob) holding field 9 (misconfigurations).
        assert_eq!(put_blob_request(&[0x1a, 0x02, 0x4a, 0x00]), None);
        // No blob at all: the general path words the error.
        assert_eq!(put_blob_request(&[0x0a, 0x01, b'x']), None);
        // A string that is not UTF-8, a length past the end, an unknown field.
        assert_eq!(put_blob_request(&[0x0a, 0x01, 0xff, 0x1a, 0x00]), None);
        assert_eq!(put_blob_request(&[0x0a, 0x05, b'x']), None);
        assert_eq!(put_blob_request(&[0x10, 0x01, 0x1a, 0x00]), None);
        // The blob sent twice.
        assert_eq!(put_blob_request(&[0x1a, 0x00, 0x1a, 0x00]), None);
    }
}
