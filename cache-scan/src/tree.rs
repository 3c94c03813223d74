//! [`scan_tree()`]: `fs` and `rootfs` scans of a directory, as one layer through the
//! cache, its key derived from the files' metadata before any file is read.

use std::{
    io::Read,
    path::{Path, PathBuf},
    time::Instant,
};

use cache_core::{ArtifactId, BlobId, BlobInfo, Cache, calc_key};

use crate::{
    analyser::{ANALYSERS, Collector, FS_ANALYSERS, LangKind, Target, lockfile},
    apply::{LayerView, apply},
    error::{Result, ScanError},
    glob::Glob,
    limits::{Crossed, LayerLimits, Stop, Tally, lang_weight},
    report::{ArtifactType, LayerCounts, Report},
    run::blocking,
    upload::{TargetSource, UploadedTarget},
    walk::{self, Found, Skips},
};

/// Which analysers a directory scan runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeKind {
    /// A project directory (`scancache fs`): what lockfiles and manifests declare, and
    /// the OS release and package database files if the tree has them.
    Fs,
    /// An unpacked root file system (`scancache rootfs`): the analysers of image layers
    /// (OS and installed packages), the tree read as one layer.
    Rootfs,
}

impl TreeKind {
    /// `fs` or `rootfs`.
    pub fn as_str(self) -> &'static str {
        match self {
            TreeKind::Fs => "fs",
            TreeKind::Rootfs => "rootfs",
        }
    }

    /// Every analyser this kind of scan runs, with its version (part of its keys).
    pub fn analysers(self) -> &'static [(&'static str, u32)] {
        match self {
            TreeKind::Fs => &FS_ANALYSERS,
            TreeKind::Rootfs => &ANALYSERS,
        }
    }
}

/// How to scan a directory.
#[derive(Clone, Debug)]
pub struct TreeOptions {
    /// `fs` or `rootfs`.
    pub kind: TreeKind,
    /// Globs of directories not entered, relative to the scanned directory
    /// (`**/node_modules`, `vendor`).
    pub skip_dirs: Vec<String>,
    /// Globs of files not read, relative to the scanned directory.
    pub skip_files: Vec<String>,
    /// Reports development dependencies too (they are always analysed and cached;
    /// this only filters the report).
    pub include_dev_deps: bool,
    /// Largest OS package database read (`rootfs`, and `fs` on a tree that has one); a
    /// larger one is skipped with a warning. Part of the key.
    pub max_db_size: u64,
    /// Most packages the directory's result may hold (after duplicates collapse); past
    /// it the scan fails with [`ScanError::LimitExceeded`], as for one image layer.
    pub max_packages: u64,
}

impl TreeOptions {
    /// The defaults for `kind`.
    pub fn new(kind: TreeKind) -> Self {
        TreeOptions {
            kind,
            skip_dirs: Vec::new(),
            skip_files: Vec::new(),
            include_dev_deps: false,
            max_db_size: crate::DEFAULT_MAX_DB_SIZE,
            max_packages: crate::DEFAULT_MAX_PACKAGES_PER_LAYER,
        }
    }
}

/// What an analyser of a directory scan takes a file as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    Lockfile(lockfile::Kind),
    Layer(Target),
}

fn select(kind: TreeKind, path: &str, mode: u32) -> Option<Want> {
    match kind {
        TreeKind::Fs => lockfile::Kind::of(path)
            .map(Want::Lockfile)
            .or_else(|| {
                (LangKind::of(path, 0) == Some(LangKind::DotnetDeps))
                    .then_some(Want::Layer(Target::Lang(LangKind::DotnetDeps)))
            })
            .or_else(|| Target::of_os(path).map(Want::Layer)),
        TreeKind::Rootfs => Target::of(path, mode).map(Want::Layer),
    }
}

/// The blob key of a directory scan from its listing: [`calc_key`] of the listing's
/// digest, the analysers of `options.kind`, and the options that change results
/// (`docs/keys.md`, "Keys of directory scans").
fn tree_key(listing: &str, options: &TreeOptions) -> Result<cache_core::Digest> {
    let opts = [
        ("db-size-cap", options.max_db_size.to_string()),
        ("scan-target", options.kind.as_str().to_owned()),
    ];
    Ok(calc_key(
        listing,
        options.kind.analysers().iter().copied(),
        opts.iter().map(|(k, v)| (*k, v.as_str())),
    )?)
}

/// The blob key `scan_tree` would use for `root` now (walks metadata only).
pub async fn tree_key_of(root: &Path, options: &TreeOptions) -> Result<BlobId> {
    let (_, files) = list(root, options).await?;
    Ok(BlobId::from(tree_key(
        &walk::listing_digest(&files),
        options,
    )?))
}

async fn list(root: &Path, options: &TreeOptions) -> Result<(PathBuf, Vec<Found<Want>>)> {
    let root = root.to_path_buf();
    let options = options.clone();
    blocking(move || {
        let meta = std::fs::metadata(&root).map_err(|e| ScanError::io("open", root.clone(), e))?;
        if !meta.is_dir() {
            return Err(ScanError::NotADirectory { path: root });
        }
        let skips = Skips {
            dirs: options.skip_dirs.iter().map(|g| Glob::new(g)).collect(),
            files: options.skip_files.iter().map(|g| Glob::new(g)).collect(),
        };
        let kind = options.kind;
        // Only rootfs selects by mode (executables); fs by path alone.
        let by_mode = kind == TreeKind::Rootfs;
        let files = walk::walk(&root, &skips, by_mode, |p, m| select(kind, p, m));
        Ok((root, files))
    })
    .await
}

/// A directory whose metadata was walked: the files its analysers select and its blob
/// key ([`list_tree`]), before any file is read. [`ListedTree::scan`] finishes the scan.
#[derive(Debug)]
pub struct ListedTree {
    root: PathBuf,
    dir: PathBuf,
    files: Vec<Found<Want>>,
    key: BlobId,
    options: TreeOptions,
    started: Instant,
}

/// Walks the metadata of the directory `root` and derives its blob key, as
/// [`scan_tree`] does first; no file is read. A front end that keeps finished reports
/// keys them by [`ListedTree::key`] (cache-core's `report` module).
///
/// Must be called within a Tokio runtime.
pub async fn list_tree(root: &Path, options: &TreeOptions) -> Result<ListedTree> {
    let started = Instant::now();
    let (dir, files) = list(root, options).await?;
    let key = BlobId::from(tree_key(&walk::listing_digest(&files), options)?);
    Ok(ListedTree {
        root: root.to_path_buf(),
        dir,
        files,
        key,
        options: options.clone(),
        started,
    })
}

impl ListedTree {
    /// The blob key of the directory's result (from the listing: paths, sizes, modes and
    /// modification times of the selected files, the analysers and the options).
    pub fn key(&self) -> &BlobId {
        &self.key
    }

    /// The rest of [`scan_tree`]: one `missing_blobs`, the files read and analysed only
    /// when the result is missing (and stored), the result applied as one layer.
    #[tracing::instrument(skip_all, fields(root = %self.root.display(), kind = self.options.kind.as_str()))]
    pub async fn scan(self, cache: &dyn Cache) -> Result<Report> {
        let ListedTree {
            root,
            dir,
            files,
            key,
            options,
            started,
        } = self;
        let (blob, cached) = result_of(dir, files, &key, cache, &options, None).await?;
        let counts = LayerCounts {
            total: 1,
            analysed: usize::from(!cached),
            cached: usize::from(cached),
            ..LayerCounts::default()
        };
        let report = assemble(&root, &blob, counts, &options);
        tracing::info!(
            path = %root.display(),
            target = options.kind.as_str(),
            analysed = counts.analysed,
            cached = counts.cached,
            packages = report.packages.len(),
            lang_packages = report.applications.iter().map(|a| a.packages.len()).sum::<usize>(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scanned directory"
        );
        Ok(report)
    }
}

/// Scans the directory `root` through `cache`, as [`TreeKind`] says.
///
/// The flow (`docs/scanning.md`, "Directory scans"): walk the tree's metadata and select
/// the files the analysers take → derive the blob key from their paths, sizes, modes and
/// modification times → one `missing_blobs` → only when the result is missing, read and
/// analyse the selected files and `put_blob` the result → apply it as one layer. An
/// unchanged tree on a persistent backend is a hit that reads no file. A file that cannot
/// be read or parsed is a warning naming it; the rest of the tree is scanned.
/// [`list_tree`] and [`ListedTree::scan`] are its two halves.
///
/// Must be called within a Tokio runtime.
pub async fn scan_tree(root: &Path, cache: &dyn Cache, options: &TreeOptions) -> Result<Report> {
    list_tree(root, options).await?.scan(cache).await
}

/// Stores the result of the directory `root` in `server` the way the reference client
/// fills a server, without reading anything back (the server builds the report):
/// walk the metadata and derive the key as [`scan_tree`] does → one `missing_blobs` on
/// the server → only when it lacks the result, obtain it through `local` as
/// [`scan_tree`] would (a hit there reads no file; a miss reads and analyses the tree
/// and stores the result in `local` too) and `put_blob` it to the server. No artifact
/// entry is written ([`UploadedTarget`]).
///
/// Must be called within a Tokio runtime.
#[tracing::instrument(skip_all, fields(root = %root.display(), kind = options.kind.as_str()))]
pub async fn upload_tree(
    root: &Path,
    server: &dyn Cache,
    local: &dyn Cache,
    options: &TreeOptions,
) -> Result<UploadedTarget> {
    let started = Instant::now();
    let (dir, files) = list(root, options).await?;
    let key = tree_key(&walk::listing_digest(&files), options)?;
    let blob_id = BlobId::from(key.clone());
    let missing = server
        .missing_blobs(&ArtifactId::from(key), std::slice::from_ref(&blob_id))
        .await?;
    let source = if missing.blobs.is_empty() {
        TargetSource::OnServer
    } else {
        let cap = server.options().max_document_size;
        let (blob, cached) = result_of(dir, files, &blob_id, local, options, cap).await?;
        server.put_blob(&blob_id, &blob).await?;
        if cached {
            TargetSource::LocalCache
        } else {
            TargetSource::Analysed
        }
    };
    tracing::info!(
        path = %root.display(),
        target = options.kind.as_str(),
        on_server = source == TargetSource::OnServer,
        from_local_cache = source == TargetSource::LocalCache,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "uploaded directory"
    );
    Ok(UploadedTarget {
        key: blob_id,
        artifact_type: ArtifactType::Filesystem,
        source,
    })
}

/// The result of the listed tree under `blob_id` from `cache`, or, when the cache lacks
/// it, read and analysed (within the caps of one layer's result and the smaller of the
/// cache's and `max_document`'s document size caps) and stored there; `true` when it
/// came from the cache.
async fn result_of(
    dir: PathBuf,
    files: Vec<Found<Want>>,
    blob_id: &BlobId,
    cache: &dyn Cache,
    options: &TreeOptions,
    max_document: Option<u64>,
) -> Result<(BlobInfo, bool)> {
    let artifact = ArtifactId::from(blob_id.digest().clone());
    let missing = cache
        .missing_blobs(&artifact, std::slice::from_ref(blob_id))
        .await?;
    let cached = if missing.blobs.is_empty() {
        cache.get_blob(blob_id).await?
    } else {
        None
    };
    if let Some(blob) = cached {
        tracing::debug!(blob = %blob_id, "directory result cached");
        return Ok((blob, true));
    }
    let max_db = options.max_db_size;
    let local = cache.options().max_document_size;
    let limits = LayerLimits {
        max_packages: options.max_packages,
        max_document: match (local, max_document) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    };
    let blob = blocking(move || analyse(&dir, &files, max_db, limits)).await?;
    cache.put_blob(blob_id, &blob).await?;
    Ok((blob, false))
}

/// Reads and analyses the selected files, within the caps of one layer's result
/// (`limits`: packages, and the document size of the cache scanned through).
fn analyse(
    root: &Path,
    files: &[Found<Want>],
    max_db_size: u64,
    limits: LayerLimits,
) -> Result<BlobInfo> {
    let name = root.display().to_string();
    let crossed = |c: Crossed| ScanError::LimitExceeded {
        subject: format!("directory {name}"),
        limit: c.limit,
        cap: c.cap,
        reached: c.reached,
    };
    let mut tally = Tally::new(limits);
    let mut collector = Collector::for_layer(name.clone());
    let mut apps = Vec::new();
    for f in files {
        let warn = |what: &str, reason: &dyn std::fmt::Display| {
            tracing::warn!(root = %name, path = %f.path, "skipping {what}: {reason}");
        };
        match f.target {
            Want::Lockfile(lockfile::Kind::CargoManifest) => {}
            Want::Lockfile(k) => match walk::read(root, f, lockfile::MAX_LOCKFILE) {
                Ok(bytes) => match k.parse(&bytes) {
                    Ok(pkgs) => {
                        let pkgs = if k == lockfile::Kind::Cargo {
                            with_cargo_manifest(root, files, &f.path, pkgs)
                        } else {
                            pkgs
                        };
                        for p in &pkgs {
                            tally.add_package(lang_weight(p)).map_err(crossed)?;
                        }
                        apps.extend(lockfile::application(k, &f.path, pkgs));
                    }
                    Err(reason) => warn(k.name(), &reason),
                },
                Err(e) => warn(k.name(), &e),
            },
            Want::Layer(Target::Lang(lang)) => match walk::open(root, f) {
                Ok(file) => match collector.add_lang(lang, &f.path, f.size, file, &mut tally) {
                    Ok(()) => {}
                    Err(Stop::Crossed(c)) => return Err(crossed(c)),
                    Err(Stop::Io(e)) => warn("file", &e),
                },
                Err(e) => warn("file", &e),
            },
            Want::Layer(target) if target.is_package_db() => {
                let opened = if f.size > max_db_size {
                    Err(walk::ReadError::TooLarge {
                        size: f.size,
                        cap: max_db_size,
                    })
                } else {
                    walk::open(root, f)
                };
                match opened {
                    Ok(file) => {
                        let mut reader = std::io::BufReader::new(file.take(max_db_size));
                        match collector.add_db(target, &f.path, &mut reader, &mut tally) {
                            Ok(()) => {}
                            Err(Stop::Crossed(c)) => return Err(crossed(c)),
                            Err(Stop::Io(e)) => warn("package database", &e),
                        }
                    }
                    Err(e) => warn("package database", &e),
                }
            }
            Want::Layer(target) => match walk::read(root, f, target.small_file_cap()) {
                Ok(bytes) => collector.add(target, &f.path, &bytes),
                Err(e) => warn("OS file", &e),
            },
        }
    }
    let mut blob = BlobInfo {
        schema_version: BlobInfo::SCHEMA_VERSION,
        ..BlobInfo::default()
    };
    collector
        .finish_within(&mut blob, &mut tally)
        .map_err(crossed)?;
    blob.applications.extend(apps);
    blob.applications
        .sort_by(|a, b| (&a.app_type, &a.file_path).cmp(&(&b.app_type, &b.file_path)));
    Ok(blob)
}

/// The packages of the `Cargo.lock` at `lock` narrowed by the `Cargo.toml` beside it,
/// when the tree has one (else as they are, as for the reference); a manifest that cannot
/// be read or parsed is a warning and leaves them as they are.
fn with_cargo_manifest(
    root: &Path,
    files: &[Found<Want>],
    lock: &str,
    pkgs: Vec<lockfile::Package>,
) -> Vec<lockfile::Package> {
    let dir = lock.strip_suffix("Cargo.lock").unwrap_or_default();
    let manifest_path = format!("{dir}Cargo.toml");
    let read_manifest = |f: &Found<Want>| -> Option<String> {
        match walk::read(root, f, lockfile::MAX_LOCKFILE) {
            Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
            Err(e) => {
                tracing::warn!(path = %f.path, "skipping Cargo.toml: {e}");
                None
            }
        }
    };
    let manifests = || {
        files
            .iter()
            .filter(|f| f.target == Want::Lockfile(lockfile::Kind::CargoManifest))
    };
    let Some(manifest) = manifests().find(|f| f.path == manifest_path) else {
        return pkgs;
    };
    let Some(text) = read_manifest(manifest) else {
        return pkgs;
    };
    let members = |glob: &str| -> Vec<String> {
        let pattern = Glob::new(&format!("{dir}{}/Cargo.toml", glob.trim_end_matches('/')));
        manifests()
            .filter(|f| pattern.matches(&f.path))
            .filter_map(read_manifest)
            .collect()
    };
    match lockfile::apply_cargo_manifest(pkgs.clone(), &text, members) {
        Ok(narrowed) => narrowed,
        Err(reason) => {
            tracing::warn!(path = %manifest_path, "skipping Cargo.toml: {reason}");
            pkgs
        }
    }
}

fn assemble(root: &Path, blob: &BlobInfo, counts: LayerCounts, options: &TreeOptions) -> Report {
    let applied = apply(&[LayerView {
        diff_id: "",
        digest: None,
        blob,
    }]);
    let os = applied.reported_os();
    let mut applications = applied.applications;
    if !options.include_dev_deps {
        for app in &mut applications {
            app.packages.retain(|p| !p.package.dev);
        }
        applications.retain(|a| !a.packages.is_empty());
    }
    Report {
        artifact_name: root.display().to_string(),
        artifact_type: ArtifactType::Filesystem,
        image_id: String::new(),
        repo_tags: Vec::new(),
        diff_ids: Vec::new(),
        architecture: String::new(),
        os,
        repository: applied.repository,
        packages: applied.packages,
        applications,
        layers: counts,
        layer_sources: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derivation of `docs/targets.md` ("Keys of directory scans") on a fixed
    /// listing: changes whenever an analyser version does; update the document with it.
    #[test]
    fn documented_tree_key() {
        let found = |path: &str, size: u64| Found {
            path: path.to_owned(),
            size,
            mode: 0o100644,
            mtime: 1_704_067_200,
            mtime_nsec: 5,
            dev: 1,
            ino: 2,
            target: (),
        };
        let listing = walk::listing_digest(&[
            found("Cargo.lock", 1234),
            found("web/package-lock.json", 99),
        ]);
        assert_eq!(
            listing,
            "sha256:15812fca779c18334ad8e43fc85e6ab05bff32de61e0d328ceca608745814ae6"
        );
        let key = tree_key(&listing, &TreeOptions::new(TreeKind::Fs)).unwrap();
        assert_eq!(
            key.as_str(),
            "sha256:f6aed5356e7f64d828473c34ec6279324774bc87a404e2357f1f7f76e891e749"
        );
    }
}
