//! Writing a report in the format the user chose, for every scanning command.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{cli::ReportFormat, output::Output};

/// Writes `report` as `format` to `output` (atomically) or standard output.
pub fn write(
    report: &cache_scan::Report,
    format: ReportFormat,
    output: Option<&Path>,
) -> Result<()> {
    write_bytes(&render(report, format)?, output)
}

/// The bytes of `report` as `format`, exactly as [`write()`] writes them.
pub fn render(report: &cache_scan::Report, format: ReportFormat) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        ReportFormat::Table => out.extend_from_slice(report.to_table().as_bytes()),
        ReportFormat::Json => report
            .write_json(&mut out)
            .context("cannot render the report")?,
        ReportFormat::Cyclonedx | ReportFormat::SpdxJson => {
            let meta = sbom_meta(report)?;
            let doc = if format == ReportFormat::Cyclonedx {
                cache_scan::sbom::cyclonedx(report, &meta)
            } else {
                cache_scan::sbom::spdx(report, &meta)
            };
            serde_json::to_writer_pretty(&mut out, &doc).context("cannot render the report")?;
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// Writes finished report bytes to `output` (atomically) or standard output.
pub fn write_bytes(bytes: &[u8], output: Option<&Path>) -> Result<()> {
    let mut out = Output::create(output)?;
    out.writer()
        .write_all(bytes)
        .with_context(|| format!("cannot write {}", out.name()))?;
    out.finish()
}

/// The value of `SOURCE_DATE_EPOCH` when set: it fixes an SBOM's time and serial number,
/// which are otherwise new on every run.
pub fn source_date_epoch() -> Option<String> {
    std::env::var("SOURCE_DATE_EPOCH").ok()
}

/// The time and serial number of an SBOM: now and a fresh UUID, or, with
/// `SOURCE_DATE_EPOCH` set (reproducible builds), that time and a UUID derived from the
/// image ID (a directory's path) and that time, so the same input gives the same bytes.
fn sbom_meta(report: &cache_scan::Report) -> Result<cache_scan::sbom::SbomMeta> {
    use sha2::{Digest as _, Sha256};
    let subject = if report.image_id.is_empty() {
        &report.artifact_name
    } else {
        &report.image_id
    };
    let epoch = source_date_epoch();
    let (time, seed) = match epoch {
        Some(e) => {
            let secs: i64 = e
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH {e:?} is not a number of seconds"))?;
            let time = chrono::DateTime::from_timestamp(secs, 0)
                .with_context(|| format!("SOURCE_DATE_EPOCH {e:?} is out of range"))?;
            (time, format!("{subject}\0{secs}"))
        }
        None => {
            let now = chrono::Utc::now();
            let nanos = now.timestamp_nanos_opt().unwrap_or_default();
            (now, format!("{subject}\0{nanos}\0{}", std::process::id()))
        }
    };
    let mut b: [u8; 16] = Sha256::digest(seed.as_bytes())[..16]
        .try_into()
        .expect("16 bytes of a 32-byte digest");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(cache_scan::sbom::SbomMeta {
        timestamp: time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        uuid: format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ),
        tool_version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}
