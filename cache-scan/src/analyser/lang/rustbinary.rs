//! `rustbinary`: the dependency list `cargo auditable` embeds in a Rust executable — the
//! ELF section `.dep-v0`, zlib-compressed JSON `{"packages": [{"name", "version",
//! "source", "kind", "dependencies": [indexes], "root"}]}`. Packages of kind `build` are
//! left out; `root` marks the binary's own crate.

use std::io::{Read, Seek};

use cache_core::Package;
use serde::Deserialize;

use super::{elf::Elf, json};

/// Largest compressed and decompressed dependency list read.
const MAX_COMPRESSED: u64 = 8 << 20;
const MAX_JSON: u64 = 16 << 20;

#[derive(Deserialize)]
struct Info {
    #[serde(default, deserialize_with = "json::nullable")]
    packages: Vec<Crate>,
}

#[derive(Deserialize)]
struct Crate {
    #[serde(default, deserialize_with = "json::nullable")]
    name: String,
    #[serde(default, deserialize_with = "json::nullable")]
    version: String,
    #[serde(default, deserialize_with = "json::nullable")]
    kind: String,
    #[serde(default, deserialize_with = "json::nullable")]
    dependencies: Vec<usize>,
    #[serde(default, deserialize_with = "json::nullable")]
    root: bool,
}

impl Crate {
    fn runtime(&self) -> bool {
        self.kind.is_empty() || self.kind == "runtime"
    }
    fn id(&self) -> String {
        if self.version.is_empty() {
            self.name.clone()
        } else {
            format!("{}@{}", self.name, self.version)
        }
    }
}

/// The crates of a binary with auditable data; `None` without a `.dep-v0` section.
pub(crate) fn parse<R: Read + Seek>(elf: &Elf, r: &mut R) -> Result<Option<Vec<Package>>, String> {
    let Some(section) = elf.section(".dep-v0") else {
        return Ok(None);
    };
    let compressed = elf.section_data(r, section, MAX_COMPRESSED)?;
    let mut text = Vec::new();
    flate2::read::ZlibDecoder::new(&compressed[..])
        .take(MAX_JSON + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot decompress .dep-v0: {e}"))?;
    if text.len() as u64 > MAX_JSON {
        return Err(format!("the decompressed .dep-v0 is over {MAX_JSON} bytes"));
    }
    let info: Info = json::first(&text)?;
    let mut out = Vec::new();
    for c in info.packages.iter().filter(|c| c.runtime()) {
        let depends_on = c
            .dependencies
            .iter()
            .filter_map(|i| info.packages.get(*i))
            .filter(|d| d.runtime())
            .map(Crate::id)
            .collect();
        out.push(Package {
            id: c.id(),
            name: c.name.clone(),
            version: c.version.clone(),
            relationship: if c.root { "root".into() } else { String::new() },
            depends_on,
            ..Package::default()
        });
    }
    Ok(Some(out))
}
