//! Hand-built binaries for the language analysers' samples and tests: minimal ELF
//! executables carrying Go build information or `cargo auditable` data, and zip archives
//! (Java archives). Built from bytes written here, so no toolchain is needed.

use std::io::Write as _;

/// Virtual address of the first byte of the file.
const BASE: u64 = 0x40_0000;

/// A 64-bit little-endian x86-64 ELF executable with the named sections (`name`,
/// `writable`, contents), all in one loadable read-write segment.
pub fn elf(sections: &[(&str, bool, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; 0x100];
    let mut placed = Vec::new();
    for (name, writable, data) in sections {
        while !out.len().is_multiple_of(16) {
            out.push(0);
        }
        placed.push((*name, *writable, out.len() as u64, data.len() as u64));
        out.extend_from_slice(data);
    }
    let seg_end = out.len() as u64;
    let mut names = vec![0u8];
    let mut name_at = Vec::new();
    for (name, ..) in &placed {
        name_at.push(names.len() as u32);
        names.extend_from_slice(name.as_bytes());
        names.push(0);
    }
    let shstr_name = names.len() as u32;
    names.extend_from_slice(b".shstrtab\0");
    let shstr_off = out.len() as u64;
    out.extend_from_slice(&names);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    out.extend_from_slice(&[0u8; 64]);
    for ((_, writable, off, size), name) in placed.iter().zip(&name_at) {
        let flags: u64 = if *writable { 3 } else { 2 };
        section(&mut out, *name, 1, flags, BASE + off, *off, *size);
    }
    section(&mut out, shstr_name, 3, 0, 0, shstr_off, names.len() as u64);
    let shnum = placed.len() as u16 + 2;
    // ELF header.
    let mut h = Vec::new();
    h.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    h.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h.extend_from_slice(&62u16.to_le_bytes()); // x86-64
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&(BASE + 0x100).to_le_bytes()); // entry
    h.extend_from_slice(&64u64.to_le_bytes()); // phoff
    h.extend_from_slice(&shoff.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&56u16.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&shnum.to_le_bytes());
    h.extend_from_slice(&(shnum - 1).to_le_bytes());
    // One PT_LOAD, read-write, covering the sections.
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&6u32.to_le_bytes());
    h.extend_from_slice(&0x100u64.to_le_bytes());
    h.extend_from_slice(&(BASE + 0x100).to_le_bytes());
    h.extend_from_slice(&(BASE + 0x100).to_le_bytes());
    h.extend_from_slice(&(seg_end - 0x100).to_le_bytes());
    h.extend_from_slice(&(seg_end - 0x100).to_le_bytes());
    h.extend_from_slice(&0x1000u64.to_le_bytes());
    out[..h.len()].copy_from_slice(&h);
    out
}

fn section(out: &mut Vec<u8>, name: u32, kind: u32, flags: u64, addr: u64, off: u64, size: u64) {
    out.extend_from_slice(&name.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&addr.to_le_bytes());
    out.extend_from_slice(&off.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
}

fn varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A Go executable: a `.go.buildinfo` section in the inline format of Go 1.18 and later,
/// holding `go_version` (e.g. `go1.22.5`) and the module list `modinfo` (lines such as
/// `path\tMOD`, `mod\tMOD\tVERSION\t`, `dep\tPATH\tVERSION\tSUM`, ending in a newline).
pub fn go_binary(go_version: &str, modinfo: &str) -> Vec<u8> {
    let mut info = b"\xff Go buildinf:".to_vec();
    info.push(8);
    info.push(2);
    info.resize(32, 0);
    varint(&mut info, go_version.len());
    info.extend_from_slice(go_version.as_bytes());
    let start = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
    let end = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";
    let mut m = start.to_vec();
    m.extend_from_slice(modinfo.as_bytes());
    m.extend_from_slice(end);
    varint(&mut info, m.len());
    info.extend_from_slice(&m);
    elf(&[
        (".text", false, b"\xc3".to_vec()),
        (".go.buildinfo", true, info),
    ])
}

/// A Rust executable with `cargo auditable` data: `json` zlib-compressed in `.dep-v0`.
pub fn rust_binary(json: &str) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json.as_bytes())
        .expect("writing to a Vec cannot fail");
    let data = z.finish().expect("writing to a Vec cannot fail");
    elf(&[(".text", false, b"\xc3".to_vec()), (".dep-v0", false, data)])
}

/// A zip archive of `entries` (name, contents), deflated, with fixed times.
pub fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(data).expect("writing to a Vec cannot fail");
        let packed = z.finish().expect("writing to a Vec cannot fail");
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&8u16.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // time
            v.extend_from_slice(&0x21u16.to_le_bytes()); // 1980-01-01
            v.extend_from_slice(&crc.sum().to_le_bytes());
            v.extend_from_slice(&(packed.len() as u32).to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes());
        };
        out.extend_from_slice(b"PK\x03\x04");
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&packed);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes());
        common(&mut central);
        central.extend_from_slice(&[0u8; 6]);
        central.extend_from_slice(&0u32.to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let dir_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&dir_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
