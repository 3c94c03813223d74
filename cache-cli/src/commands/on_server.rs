//! What the scanning commands share with `--server`: the client of the server, the
//! refusal of SBOM formats, the `Scan` request the reference client sends, and the
//! report of the server's answer in the chosen format.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use cache_remote::{ReferenceClient, UploadCache};
use cache_scan::UploadedTarget;
use cache_server::proto::scanner::{ScanOptions as ScanRequestOptions, ScanRequest};

use crate::{
    backend,
    cli::{GlobalOpts, ReportFormat, Scanner, ServerScanArgs},
    output::Output,
    server_report::{ServerReport, Subject},
};

/// The client of the server at `url`, with the token, token header and CA of the global
/// options; a bad setting is named by its flag.
pub fn client(url: &str, g: &GlobalOpts) -> Result<ReferenceClient> {
    ReferenceClient::new(&backend::remote_config(url, g)).map_err(|e| match e.config_parts() {
        Some((cache_core::Setting::TlsCa, reason)) => anyhow!("invalid --server-ca: {reason}"),
        Some((_, reason)) => anyhow!("invalid --server: {reason}"),
        None => e.into(),
    })
}

/// The upload view of `client`, refusing documents over `--max-document-size` before
/// they are sent.
pub fn upload_cache<'a>(client: &'a ReferenceClient, g: &GlobalOpts) -> Result<UploadCache<'a>> {
    let cap = cache_core::parse_size(&g.max_document_size)
        .map_err(|e| backend::with_flag(e, "--max-document-size"))?;
    Ok(UploadCache::new(client, Some(cap).filter(|&n| n > 0)))
}

/// The refusal of an SBOM format with `--server`: the report is the server's answer,
/// which carries no layer of the SBOM writers' model.
pub fn sbom_with_server(format: ReportFormat) -> Option<anyhow::Error> {
    matches!(format, ReportFormat::Cyclonedx | ReportFormat::SpdxJson).then(|| {
        anyhow!(
            "--format {} cannot be used with --server: the report comes from the server's \
             answer; use --format table or json",
            match format {
                ReportFormat::Cyclonedx => "cyclonedx",
                _ => "spdx-json",
            }
        )
    })
}

/// What to scan on the server: the request's target and keys.
pub struct Request<'a> {
    /// The result targets' name: the input path.
    pub target: &'a str,
    /// The artifact ID.
    pub artifact_id: String,
    /// The blob IDs, bottom first.
    pub blob_ids: Vec<String>,
    /// Report development dependencies too.
    pub include_dev_deps: bool,
}

/// The `Scan` request of the reference client: OS and language packages, every package
/// relationship, the scanners asked for plus `sbom` (the packages themselves, which the
/// reference client adds for its package list).
fn scan_request(r: &Request<'_>, scanners: &[Scanner]) -> ScanRequest {
    let mut names: Vec<String> = scanners.iter().map(|s| s.name().to_owned()).collect();
    names.dedup();
    names.push("sbom".into());
    ScanRequest {
        target: r.target.to_owned(),
        artifact_id: r.artifact_id.clone(),
        blob_ids: r.blob_ids.clone(),
        options: Some(ScanRequestOptions {
            pkg_types: vec!["os".into(), "library".into()],
            scanners: names,
            pkg_relationships: ["unknown", "root", "workspace", "direct", "indirect"]
                .map(String::from)
                .to_vec(),
            include_dev_deps: r.include_dev_deps,
            ..ScanRequestOptions::default()
        }),
    }
}

/// Asks the server to scan a directory's or an SBOM's uploaded result (`uploaded`, stored
/// under its key, with no artifact entry) and writes its report as [`scan_and_write`]
/// does.
pub async fn scan_uploaded_and_write(
    client: &ReferenceClient,
    target: &str,
    uploaded: &UploadedTarget,
    include_dev_deps: bool,
    remote: &ServerScanArgs,
    format: ReportFormat,
    output: Option<&Path>,
) -> Result<()> {
    let request = Request {
        target,
        artifact_id: uploaded.key.to_string(),
        blob_ids: vec![uploaded.key.to_string()],
        include_dev_deps,
    };
    scan_and_write(
        client,
        &request,
        Subject::Target(uploaded),
        remote,
        format,
        output,
    )
    .await
}

/// Asks the server to scan what was uploaded, and writes its answer as `format` to
/// `output` (atomically) or standard output. Nothing is written before the answer is
/// complete.
pub async fn scan_and_write(
    client: &ReferenceClient,
    request: &Request<'_>,
    subject: Subject<'_>,
    remote: &ServerScanArgs,
    format: ReportFormat,
    output: Option<&Path>,
) -> Result<()> {
    let scanners = remote.scanners();
    let response = client
        .scan(&scan_request(request, &scanners))
        .await
        .with_context(|| {
            format!(
                "the server {} did not scan {}",
                client.location(),
                request.target
            )
        })?;
    let report = ServerReport {
        artifact_name: request.target,
        subject,
        response: &response,
        vulnerabilities_asked: scanners.contains(&Scanner::Vuln),
    };
    let mut out = Output::create(output)?;
    let written = match format {
        ReportFormat::Table => out.writer().write_all(report.to_table().as_bytes()),
        ReportFormat::Json => report.write_json(out.writer()),
        ReportFormat::Cyclonedx | ReportFormat::SpdxJson => {
            return Err(sbom_with_server(format).unwrap_or_else(|| anyhow!("no report")));
        }
    };
    written.with_context(|| format!("cannot write {}", out.name()))?;
    out.finish()
}
