//! Hostile package files for the bad-input tests: a layer whose language files are each
//! broken in one way the analysers must survive (truncated ELF, absurd ELF header and
//! section sizes, binary `METADATA`, deeply nested `package.json`, zip bombs), each next
//! to a good file of the same kind, and what a scanner should make of it.

use crate::{LayerBuilder, binaries};

/// One hostile file of [`hostile_layer`]: its path and a word of the reason a scanner's
/// warning should give for skipping it.
#[derive(Clone, Copy, Debug)]
pub struct Hostile {
    /// The file's path in the layer.
    pub path: &'static str,
    /// A fragment of the reason scancache gives when it skips the file.
    pub reason: &'static str,
}

/// The hostile files of [`hostile_layer`].
pub const HOSTILE_FILES: &[Hostile] = &[
    Hostile {
        path: "usr/bin/truncated",
        reason: "past the end of the file",
    },
    Hostile {
        path: "usr/bin/absurd-table",
        reason: "over the 4194304-byte limit",
    },
    Hostile {
        path: "usr/bin/absurd-section",
        reason: "section .dep-v0 is 1099511627776 bytes",
    },
    Hostile {
        path: "usr/lib/python3/dist-packages/bin-1.0.dist-info/METADATA",
        reason: "no name or no version",
    },
    Hostile {
        path: "app/deep/package.json",
        reason: "recursion limit",
    },
    Hostile {
        path: "opt/bomb.jar",
        reason: "zip bomb",
    },
    Hostile {
        path: "opt/huge-entry.jar",
        reason: "inflates to 4294967295 bytes",
    },
];

/// The `type:name` of every package a scanner should still find in [`hostile_layer`].
pub const HOSTILE_SURVIVORS: &[&str] = &[
    "gobinary:example.com/good",
    "gobinary:stdlib",
    "jar:org.example:fine",
    "node-pkg:fine",
    "python-pkg:ok",
];

/// A layer holding every file of [`HOSTILE_FILES`] and the good files that survive
/// them ([`HOSTILE_SURVIVORS`]).
pub fn hostile_layer() -> LayerBuilder {
    let go = binaries::go_binary(
        "go1.22.5",
        "path\texample.com/good\nmod\texample.com/good\tv1.0.0\t\n",
    );
    let mut truncated = go.clone();
    truncated.truncate(200);
    // e_shoff far past the end, and 65,535 section headers of 65,535 bytes each.
    let mut absurd_table = go.clone();
    absurd_table[40..48].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    absurd_table[58..60].copy_from_slice(&u16::MAX.to_le_bytes());
    absurd_table[60..62].copy_from_slice(&u16::MAX.to_le_bytes());
    // A `.dep-v0` section header claiming a terabyte.
    let mut absurd_section = binaries::rust_binary(r#"{"packages":[]}"#);
    let shoff = u64::from_le_bytes(absurd_section[40..48].try_into().expect("8 bytes"));
    let dep = usize::try_from(shoff).expect("small") + 2 * 64; // null, .text, .dep-v0
    absurd_section[dep + 32..dep + 40].copy_from_slice(&(1u64 << 40).to_le_bytes());

    // Declared 100 bytes long in both headers, the entry inflates to 8 MiB.
    let mut payload = vec![0u8; 8 << 20];
    payload[0] = 1;
    let mut bomb = binaries::zip(&[("META-INF/maven/g/a/pom.properties", payload)]);
    set_sizes(&mut bomb, 100);
    // Declares 4 GiB: refused before anything is inflated.
    let mut huge_entry = binaries::zip(&[(
        "META-INF/maven/g/b/pom.properties",
        b"groupId=g\nartifactId=b\nversion=1\n".to_vec(),
    )]);
    set_sizes(&mut huge_entry, u32::MAX);
    let fine = binaries::zip(&[(
        "META-INF/maven/org.example/fine/pom.properties",
        b"groupId=org.example\nartifactId=fine\nversion=2.0\n".to_vec(),
    )]);

    LayerBuilder::new()
        .executable("usr/bin/truncated", truncated)
        .executable("usr/bin/absurd-table", absurd_table)
        .executable("usr/bin/absurd-section", absurd_section)
        .executable("usr/bin/good", go)
        .file(
            "usr/lib/python3/dist-packages/bin-1.0.dist-info/METADATA",
            b"\x00\x01\xff\xfe\x7fELF\x00garbage\n",
        )
        .file(
            "usr/lib/python3/dist-packages/ok-1.0.dist-info/METADATA",
            "Name: ok\nVersion: 1.0\n",
        )
        .file(
            "app/deep/package.json",
            format!(
                "{{\"name\":\"deep\",\"version\":\"1\",\"license\":{}{}}}",
                "[".repeat(5000),
                "]".repeat(5000)
            ),
        )
        .file(
            "app/fine/package.json",
            r#"{"name":"fine","version":"2.0.0"}"#,
        )
        .file("opt/bomb.jar", bomb)
        .file("opt/huge-entry.jar", huge_entry)
        .file("opt/fine-2.0.jar", fine)
}

/// Sets the uncompressed size of the first entry of a zip archive, in its local and its
/// central directory header.
fn set_sizes(zip: &mut [u8], size: u32) {
    for (sig, size_at) in [(&b"PK\x03\x04"[..], 22), (b"PK\x01\x02", 24)] {
        let at = zip
            .windows(4)
            .position(|w| w == sig)
            .expect("the archive has this header")
            + size_at;
        zip[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }
}
