//! `scancache cache …`: inspect and manage the scan cache.

use std::{
    fs,
    io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write},
    ops::ControlFlow,
    path::Path,
};

use anyhow::{Context, Result, anyhow, bail};
use cache_core::{
    ArtifactId, BlobId, Cache, Digest, EntryKey, EntryKind, EntryMeta, GcOptions, RawEntry, rules,
};
use serde_json::json;

use crate::{
    cli::{CacheCommand, Format},
    ndjson,
    output::Output,
};

/// Entries sent to the backend per `import` call.
pub(crate) const IMPORT_BATCH: usize = 1000;

/// Runs one `cache` subcommand against an open backend.
pub async fn run(cmd: &CacheCommand, cache: &dyn Cache) -> Result<()> {
    match cmd {
        CacheCommand::Stats { format } => stats(cache, *format).await,
        CacheCommand::Ls { kind, format } => ls(cache, kind.map(Into::into), *format).await,
        CacheCommand::Get { id, kind } => get(cache, id, kind.map(Into::into)).await,
        CacheCommand::Rm { ids } => rm(cache, ids).await,
        CacheCommand::Gc { unused_for } => gc(cache, *unused_for).await,
        CacheCommand::Export { file } => export(cache, file).await,
        CacheCommand::Import {
            file,
            from_trivy,
            dry_run,
            strict,
        } => match (file, from_trivy) {
            (Some(file), None) => import(cache, file, *strict, *dry_run).await,
            // main.rs runs --from-trivy itself, before opening a backend; clap makes FILE
            // and --from-trivy exclusive and one of them required.
            _ => bail!("cache import needs FILE or --from-trivy PATH"),
        },
    }
}

async fn stats(cache: &dyn Cache, format: Format) -> Result<()> {
    let s = cache.stats().await?;
    let mut out = io::stdout().lock();
    match format {
        Format::Json => {
            let doc = json!({
                "backend": cache.backend_name(),
                "location": cache.location(),
                "artifacts": s.artifacts,
                "blobs": s.blobs,
                "reports": s.reports,
                "bytes": s.bytes,
                "expired": s.expired,
                "disk_bytes": s.disk_bytes,
                "unread_7d": known(&s, s.unread[0]),
                "unread_30d": known(&s, s.unread[1]),
            });
            writeln!(out, "{doc}")?;
        }
        Format::Table => {
            writeln!(
                out,
                "backend:    {} ({})",
                cache.backend_name(),
                cache.location()
            )?;
            writeln!(out, "artifacts:  {}", s.artifacts)?;
            writeln!(out, "blobs:      {}", s.blobs)?;
            writeln!(out, "reports:    {}", s.reports)?;
            writeln!(out, "bytes:      {} ({})", s.bytes, human_bytes(s.bytes))?;
            writeln!(out, "expired:    {}", s.expired)?;
            match (known(&s, s.unread[0]), known(&s, s.unread[1])) {
                (Some(week), Some(month)) => {
                    writeln!(out, "unread 7d:  {week}")?;
                    writeln!(out, "unread 30d: {month}")?;
                }
                _ => writeln!(
                    out,
                    "unread:     unknown (the backend does not record reads)"
                )?,
            }
            if let Some(disk) = s.disk_bytes {
                writeln!(out, "disk size:  {disk} ({})", human_bytes(disk))?;
            }
        }
    }
    Ok(())
}

/// An unread count, or `None` when the backend knows no entry's last read (Redis).
fn known(s: &cache_core::Stats, count: u64) -> Option<u64> {
    let live = s.artifacts + s.blobs + s.reports;
    (live == 0 || s.access_unknown < live).then_some(count)
}

async fn ls(cache: &dyn Cache, kind: Option<EntryKind>, format: Format) -> Result<()> {
    let mut out = BufWriter::new(io::stdout());
    let mut first = true;
    if format == Format::Json {
        write!(out, "[")?;
    } else {
        writeln!(out, "{:<8}  {:<71}  {:>10}  EXPIRES", "KIND", "ID", "SIZE")?;
    }
    let mut write_err = None;
    cache
        .list(kind, &mut |m: EntryMeta| {
            let r = match format {
                Format::Json => {
                    let sep = if std::mem::take(&mut first) { "" } else { "," };
                    let doc = json!({
                        "kind": m.key.kind,
                        "id": m.key.id,
                        "size": m.size,
                        "expires_at": m.expires_at.map(ndjson::format_time),
                    });
                    write!(out, "{sep}\n  {doc}")
                }
                Format::Table => writeln!(
                    out,
                    "{:<8}  {:<71}  {:>10}  {}",
                    m.key.kind,
                    m.key.id,
                    m.size,
                    m.expires_at
                        .map_or_else(|| "never".to_owned(), ndjson::format_time)
                ),
            };
            match r {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    write_err = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .await?;
    if let Some(io) = write_err {
        return Err(anyhow!(io).context("cannot write to standard output"));
    }
    if format == Format::Json {
        writeln!(out, "{}]", if first { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(())
}

async fn get(cache: &dyn Cache, id: &Digest, kind: Option<EntryKind>) -> Result<()> {
    let kinds = match kind {
        Some(k) => vec![k],
        None => vec![EntryKind::Blob, EntryKind::Artifact],
    };
    for kind in kinds {
        if kind == EntryKind::Report {
            // A stored report is printed as it would be written: its own bytes.
            if let Some(report) = cache.get_report(id).await? {
                let mut out = io::stdout().lock();
                out.write_all(&report)?;
                out.flush()?;
                return Ok(());
            }
            continue;
        }
        let doc = match kind {
            EntryKind::Blob => cache
                .get_blob(&BlobId::from(id.clone()))
                .await?
                .map(|d| serde_json::to_value(d).map(|v| (v, kind))),
            EntryKind::Artifact => cache
                .get_artifact(&ArtifactId::from(id.clone()))
                .await?
                .map(|d| serde_json::to_value(d).map(|v| (v, kind))),
            EntryKind::Report => None,
        };
        if let Some(doc) = doc {
            let (value, _) = doc?;
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &value)?;
            writeln!(out)?;
            return Ok(());
        }
    }
    bail!("no cache entry {id} in {}", cache.location())
}

async fn rm(cache: &dyn Cache, ids: &[Digest]) -> Result<()> {
    let keys: Vec<EntryKey> = ids
        .iter()
        .flat_map(|id| {
            EntryKind::ALL.map(|kind| EntryKey {
                kind,
                id: id.clone(),
            })
        })
        .collect();
    let removed = cache.delete(&keys).await?;
    tracing::info!("Removed {removed} entries");
    Ok(())
}

async fn gc(cache: &dyn Cache, unused_for: Option<std::time::Duration>) -> Result<()> {
    let r = cache.gc_with(&GcOptions { unused_for }).await?;
    let mut msg = match unused_for {
        None => format!(
            "Removed {} expired and {} stale entries ({})",
            r.expired,
            r.stale,
            human_bytes(r.bytes)
        ),
        Some(_) => format!(
            "Removed {} expired, {} stale and {} unused entries ({})",
            r.expired,
            r.stale,
            r.unused,
            human_bytes(r.bytes)
        ),
    };
    if let Some((before, after)) = r.disk_bytes {
        msg.push_str(&format!(
            "; disk size {} -> {} ({} returned)",
            human_bytes(before),
            human_bytes(after),
            human_bytes(before.saturating_sub(after))
        ));
    }
    tracing::info!("{msg}");
    if r.access_unknown > 0 {
        tracing::warn!(
            "Kept {} entries whose last read the {} backend does not record; expire them \
             with --cache-ttl (and --cache-ttl-refresh) instead",
            r.access_unknown,
            cache.backend_name()
        );
    }
    Ok(())
}

async fn export(cache: &dyn Cache, file: &Path) -> Result<()> {
    let mut sink = Output::create(Some(file))?;
    let (mut written, mut skipped, mut reports) = (0u64, 0u64, 0u64);
    let mut write_err = None;
    cache
        .export(None, &mut |e: RawEntry| {
            // Stored reports are not exported: they are not documents, and the next scan
            // of the same tree rebuilds them from the exported blob.
            if e.key.kind == EntryKind::Report {
                reports += 1;
                return ControlFlow::Continue(());
            }
            match ndjson::to_line(&e) {
                Ok(line) => {
                    if let Err(err) = writeln!(sink.writer(), "{line}") {
                        write_err = Some(err);
                        return ControlFlow::Break(());
                    }
                    written += 1;
                }
                Err(err) => {
                    tracing::warn!("Skipping {} {}: {err:#}", e.key.kind, e.key.id);
                    skipped += 1;
                }
            }
            ControlFlow::Continue(())
        })
        .await?;
    if let Some(io) = write_err {
        return Err(anyhow!(io).context(format!("cannot write {}", sink.name())));
    }
    let name = sink.name();
    sink.finish()?;
    tracing::info!("Exported {written} entries to {name}");
    if reports > 0 {
        tracing::info!("Left out {reports} stored reports (the next scan rebuilds them)");
    }
    if skipped > 0 {
        bail!("{skipped} entries could not be exported (see the warnings above)");
    }
    Ok(())
}

async fn import(cache: &dyn Cache, file: &Path, strict: bool, dry_run: bool) -> Result<()> {
    let (reader, name): (Box<dyn BufRead + Send>, String) = if file == Path::new("-") {
        if io::stdin().is_terminal() {
            tracing::info!("Reading entries from standard input (end with Ctrl-D)");
        }
        (
            Box::new(BufReader::new(io::stdin())),
            "standard input".into(),
        )
    } else {
        let f = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        (Box::new(BufReader::new(f)), file.display().to_string())
    };
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let (mut imported, mut bad) = (0u64, 0u64);
    let mut reader = reader;
    let mut buf = Vec::new();
    for n in 1.. {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {name} at line {n}"))?;
        if read == 0 {
            break;
        }
        let parsed = std::str::from_utf8(&buf)
            .map_err(|e| anyhow!("not UTF-8: {e}"))
            .and_then(|line| match line.trim() {
                "" => Ok(None),
                line => ndjson::from_line(line).map(Some),
            });
        let limit = cache.options().max_document_size;
        let parsed = parsed.and_then(|entry| match entry {
            Some(e) => rules::check_document_size(&e.key, e.value.len() as u64, limit)
                .map(|()| Some(e))
                .map_err(|err| anyhow!("{err} (raise it with --max-document-size)")),
            None => Ok(None),
        });
        match parsed {
            Ok(Some(entry)) => batch.push(entry),
            Ok(None) => {}
            Err(e) if strict => {
                bail!(
                    "{name} line {n}: {e:#} (stopped; {imported} entries were imported before it)"
                )
            }
            Err(e) => {
                tracing::warn!("Skipping {name} line {n}: {e:#}");
                bad += 1;
            }
        }
        if batch.len() >= IMPORT_BATCH {
            if !dry_run {
                cache.import(&batch).await?;
            }
            imported += batch.len() as u64;
            batch.clear();
        }
    }
    if !dry_run {
        cache.import(&batch).await?;
    }
    imported += batch.len() as u64;
    if dry_run {
        tracing::info!("Dry run: {name} holds {imported} entries to import; nothing was written");
    } else {
        tracing::info!("Imported {imported} entries from {name}");
    }
    if bad > 0 {
        bail!("{bad} lines of {name} were not imported (see the warnings above)");
    }
    Ok(())
}

/// `1536` → `1.5 KiB`.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
