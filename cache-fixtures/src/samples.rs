//! The committed sample archives: a Debian-like image, an Alpine-like image sharing
//! nothing with it, and two images sharing a base layer.

use std::{
    io,
    path::{Path, PathBuf},
};

use crate::{
    Compression, ImageBuilder, LayerBuilder,
    data::{self, dpkg_status},
    docker_save, docker_save_oci, oci_archive,
};

/// The files [`write_samples`] writes, in order.
pub const SAMPLE_FILES: [&str; 5] = [
    "README.md",
    "alpine.tar",
    "debian.tar",
    "lang.tar",
    "pair.tar",
];

/// Writes the samples into `dir` (created if needed) and returns the paths written:
///
/// - `debian.tar`: `docker save` (classic layout) of `sample/debian:12`, Debian 12.11,
///   two uncompressed layers (base system; `apt-get install curl`);
/// - `alpine.tar`: OCI image layout tar of `sample/alpine:3.20`, Alpine 3.20.3, two
///   gzip layers (base system; `apk add curl`);
/// - `pair.tar`: Docker ≥ 25 `docker save` of `sample/app-a:1.0` and `sample/app-b:1.0`,
///   both on one Ubuntu 22.04 base layer;
/// - `lang.tar`: `docker save` of `sample/lang:1`, Debian 12.11 with Debian copyright
///   files, Python, Node.js, Ruby, PHP, conda and .NET packages, a Go and a Rust
///   executable and a Java archive, and a layer that uninstalls one Python package and
///   upgrades one Node.js package;
/// - `README.md`: what they are and how to regenerate them.
///
/// Output is byte-for-byte reproducible.
pub fn write_samples(dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let (app_a, app_b) = pair_images();
    let contents: [(&str, Vec<u8>); 5] = [
        ("README.md", data::SAMPLES_README.as_bytes().to_vec()),
        ("alpine.tar", oci_archive(&[&alpine_image()])),
        ("debian.tar", docker_save(&[&debian_image()])),
        ("lang.tar", docker_save(&[&lang_image()])),
        ("pair.tar", docker_save_oci(&[&app_a, &app_b])),
    ];
    let mut written = Vec::new();
    for (name, data) in contents {
        let path = dir.join(name);
        std::fs::write(&path, data)?;
        written.push(path);
    }
    Ok(written)
}

/// The Debian-like sample image: `sample/debian:12`, Debian 12.11.
pub fn debian_image() -> ImageBuilder {
    let base_layer = with_os_release(debian_shells(), data::DEBIAN_OS_RELEASE)
        .file("etc/debian_version", "12.11\n")
        .file("etc/hostname", "")
        .file("etc/group", "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n")
        .file("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        .file("var/lib/dpkg/status", data::DEBIAN_STATUS)
        .file("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", "stand-in apt list\n")
        .dir("tmp")
        .dir("root");
    let curl_layer = LayerBuilder::new()
        .file("usr/bin/curl", b"\x7fELF stand-in for curl\n")
        .file("usr/bin/openssl", b"\x7fELF stand-in for openssl\n")
        .file(
            "etc/ssl/certs/ca-certificates.crt",
            "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n",
        )
        .file(
            "var/lib/dpkg/status",
            dpkg_status(&[data::DEBIAN_STATUS, data::DEBIAN_STATUS_CURL]),
        )
        .opaque("var/lib/apt/lists");
    ImageBuilder::new(&["sample/debian:12"])
        .layer(
            &base_layer,
            Compression::None,
            "# debian.sh --arch 'amd64' out/ 'bookworm' '@1748908800'",
        )
        .layer(
            &curl_layer,
            Compression::None,
            "RUN /bin/sh -c apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/* # buildkit",
        )
}

/// The Alpine-like sample image: `sample/alpine:3.20`, Alpine 3.20.3.
pub fn alpine_image() -> ImageBuilder {
    let base_layer = with_os_release(LayerBuilder::new(), data::ALPINE_OS_RELEASE)
        .file("bin/busybox", b"\x7fELF stand-in for busybox\n")
        .symlink("bin/sh", "/bin/busybox")
        .file("etc/alpine-release", "3.20.3\n")
        .file("etc/apk/repositories", "https://dl-cdn.alpinelinux.org/alpine/v3.20/main\nhttps://dl-cdn.alpinelinux.org/alpine/v3.20/community\n")
        .file("etc/apk/world", "alpine-baselayout\nalpine-keys\napk-tools\nbusybox\nca-certificates-bundle\nlibc-utils\nssl_client\n")
        .file("etc/motd", "Welcome to Alpine!\n")
        .file("lib/apk/db/installed", data::ALPINE_INSTALLED)
        .file("lib/ld-musl-x86_64.so.1", b"\x7fELF stand-in for musl\n")
        .symlink("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1");
    let curl_layer = LayerBuilder::new()
        .file("etc/apk/world", "alpine-baselayout\nalpine-keys\napk-tools\nbusybox\nca-certificates-bundle\ncurl\nlibc-utils\nssl_client\n")
        .file(
            "lib/apk/db/installed",
            [data::ALPINE_INSTALLED, data::ALPINE_INSTALLED_CURL].concat(),
        )
        .file("usr/bin/curl", b"\x7fELF stand-in for curl\n")
        .file("usr/lib/libcurl.so.4", b"\x7fELF stand-in for libcurl\n")
        .whiteout("etc/motd");
    let mut image = ImageBuilder::new(&["sample/alpine:3.20"])
        .layer(
            &base_layer,
            Compression::Gzip,
            "ADD alpine-minirootfs-3.20.3-x86_64.tar.gz / # buildkit",
        )
        .layer(
            &curl_layer,
            Compression::Gzip,
            "RUN /bin/sh -c apk add --no-cache curl # buildkit",
        );
    image.cmd = vec!["/bin/sh".into()];
    image
}

/// The two sample images sharing an Ubuntu 22.04 base layer: `sample/app-a:1.0` (adds
/// Python) and `sample/app-b:1.0` (adds OpenSSL and removes `etc/motd`).
pub fn pair_images() -> (ImageBuilder, ImageBuilder) {
    let base_layer = with_os_release(debian_shells(), data::UBUNTU_OS_RELEASE)
        .file("etc/debian_version", "bookworm/sid\n")
        .file("etc/lsb-release", "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\nDISTRIB_CODENAME=jammy\nDISTRIB_DESCRIPTION=\"Ubuntu 22.04.5 LTS\"\n")
        .file("etc/motd", "Welcome to Ubuntu\n")
        .file("var/lib/dpkg/status", data::UBUNTU_STATUS);
    let base_created = "/bin/sh -c #(nop) ADD file:ubuntu-jammy-oci-amd64-root.tar.gz in / ";
    let app_a = ImageBuilder::new(&["sample/app-a:1.0"])
        .layer(&base_layer, Compression::None, base_created)
        .layer(
            &LayerBuilder::new()
                .file("usr/bin/python3.10", b"\x7fELF stand-in for python3.10\n")
                .file(
                    "var/lib/dpkg/status",
                    dpkg_status(&[data::UBUNTU_STATUS, data::UBUNTU_STATUS_PYTHON]),
                )
                .file("app/main.py", "print('hello from app-a')\n"),
            Compression::None,
            "RUN /bin/sh -c apt-get update && apt-get install -y python3.10-minimal # buildkit",
        );
    let mut app_b = ImageBuilder::new(&["sample/app-b:1.0"])
        .layer(&base_layer, Compression::None, base_created)
        .layer(
            &LayerBuilder::new()
                .file("usr/bin/openssl", b"\x7fELF stand-in for openssl\n")
                .file(
                    "var/lib/dpkg/status",
                    dpkg_status(&[data::UBUNTU_STATUS, data::UBUNTU_STATUS_OPENSSL]),
                )
                .whiteout("etc/motd"),
            Compression::None,
            "RUN /bin/sh -c apt-get update && apt-get install -y openssl ca-certificates && rm /etc/motd # buildkit",
        );
    app_b.cmd = vec!["openssl".into(), "version".into()];
    (app_a, app_b)
}

/// The sample image with language packages: `sample/lang:1`, Debian 12.11.
pub fn lang_image() -> ImageBuilder {
    let site = "usr/local/lib/python3.11/site-packages";
    let app = "srv/app";
    let base = with_os_release(debian_shells(), data::DEBIAN_OS_RELEASE)
        .file("etc/debian_version", "12.11\n")
        .file("var/lib/dpkg/status", data::DEBIAN_STATUS)
        .file("usr/share/doc/bash/copyright", data::LANG_COPYRIGHT_BASH)
        .file(
            "usr/share/doc/libc6/copyright",
            "See /usr/share/common-licenses/LGPL-2.1 for the license.\n",
        )
        .file(
            "usr/share/doc/ca-certificates/examples/debian/copyright",
            "License: MIT\n",
        );
    let packages = LayerBuilder::new()
        .file(&format!("{site}/requests-2.31.0.dist-info/METADATA"), data::LANG_METADATA_REQUESTS)
        .file(&format!("{site}/requests-2.31.0.dist-info/RECORD"), "requests/__init__.py,,\n")
        .file(&format!("{site}/six-1.16.0.dist-info/METADATA"), "Metadata-Version: 2.1\nName: six\nVersion: 1.16.0\nLicense: MIT\n\nPython 2 and 3 compatibility utilities\n")
        .file(&format!("{site}/Typing_Extensions-4.12.2.dist-info/METADATA"), "Metadata-Version: 2.1\nName: typing_extensions\nVersion: 4.12.2\nLicense-Expression: PSF-2.0\n\n")
        .file(&format!("{site}/legacy-0.1.egg-info/PKG-INFO"), "Metadata-Version: 1.0\nName: legacy\nVersion: 0.1\nLicense: BSD License\n")
        .file("usr/lib/python3/dist-packages/chardet.egg-info", "Metadata-Version: 1.1\nName: chardet\nVersion: 5.1.0\nLicense: LGPL\n")
        .file(&format!("{app}/package.json"), r#"{"name":"sample-app","version":"1.0.0","license":"MIT","dependencies":{"left-pad":"^1.3.0"}}"#)
        .file(&format!("{app}/node_modules/left-pad/package.json"), r#"{"name":"left-pad","version":"1.2.0","license":"WTFPL"}"#)
        .file(&format!("{app}/node_modules/@types/node/package.json"), r#"{"name":"@types/node","version":"20.11.5","license":{"type":"MIT"}}"#)
        .file(&format!("{app}/node_modules/rxjs/ajax/package.json"), r#"{"name":"rxjs/ajax","main":"./index.js"}"#)
        .file("usr/local/lib/ruby/gems/3.2.0/specifications/rake-13.0.6.gemspec", "# -*- encoding: utf-8 -*-\nGem::Specification.new do |s|\n  s.name = \"rake\".freeze\n  s.version = \"13.0.6\"\n  s.licenses = [\"MIT\".freeze]\nend\n")
        .file(&format!("{app}/vendor/composer/installed.json"), r#"{"packages":[{"name":"monolog/monolog","version":"2.9.1","license":["MIT"],"require":{"php":">=7.2","psr/log":"^1.0"}},{"name":"psr/log","version":"1.1.4","license":["MIT"]}],"dev":false}"#)
        .file("opt/conda/envs/tools/conda-meta/zlib-1.2.13-h5eee18b_0.json", r#"{"name":"zlib","version":"1.2.13","license":"Zlib","build":"h5eee18b_0"}"#)
        .file(&format!("{app}/dotnet/web.deps.json"), data::LANG_DEPS_JSON)
        .executable("usr/local/bin/hello-go", crate::binaries::go_binary("go1.22.5", data::LANG_GO_MODINFO))
        .executable("usr/local/bin/hello-rs", crate::binaries::rust_binary(data::LANG_RUST_AUDIT))
        .executable("usr/local/bin/hello.sh", "#!/bin/sh\necho hello\n")
        .file("opt/app/lib/demo-app-1.0.0.jar", lang_jar());
    let changes = LayerBuilder::new()
        .whiteout(&format!("{site}/six-1.16.0.dist-info"))
        .file(
            &format!("{app}/node_modules/left-pad/package.json"),
            r#"{"name":"left-pad","version":"1.3.0","license":"WTFPL"}"#,
        );
    ImageBuilder::new(&["sample/lang:1"])
        .layer(
            &base,
            Compression::None,
            "# debian.sh --arch 'amd64' out/ 'bookworm' '@1748908800'",
        )
        .layer(&packages, Compression::None, "COPY . / # buildkit")
        .layer(
            &changes,
            Compression::None,
            "RUN /bin/sh -c pip uninstall -y six && npm install left-pad@1.3.0 # buildkit",
        )
}

/// A Java archive with Maven properties, a manifest and a nested library.
fn lang_jar() -> Vec<u8> {
    let inner = crate::binaries::zip(&[
        ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nImplementation-Title: commons-text\r\nImplementation-Version: 1.10.0\r\nImplementation-Vendor-Id: org.apache.commons\r\nBundle-License: Apache-2.0\r\n\r\n".to_vec()),
    ]);
    crate::binaries::zip(&[
        (
            "META-INF/MANIFEST.MF",
            b"Manifest-Version: 1.0\r\nMain-Class: demo.App\r\n\r\n".to_vec(),
        ),
        (
            "META-INF/maven/com.example/demo-app/pom.properties",
            b"groupId=com.example\nartifactId=demo-app\nversion=1.0.0\n".to_vec(),
        ),
        ("BOOT-INF/lib/commons-text-1.10.0.jar", inner),
    ])
}

/// The shells of a Debian-like base layer: bash, and `sh` linking to dash.
fn debian_shells() -> LayerBuilder {
    LayerBuilder::new()
        .file("bin/bash", b"\x7fELF stand-in for bash\n")
        .symlink("bin/sh", "dash")
        .file("bin/dash", b"\x7fELF stand-in for dash\n")
}

/// `layer` with `usr/lib/os-release` holding `text` and `etc/os-release` linking to it,
/// as distributions ship them.
fn with_os_release(layer: LayerBuilder, text: &str) -> LayerBuilder {
    layer
        .symlink("etc/os-release", "../usr/lib/os-release")
        .file("usr/lib/os-release", text)
}
