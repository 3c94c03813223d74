//! The `Scan` RPC.

use axum::{extract::State, response::Response};

use crate::{
    ServerState,
    proto::scanner::ScanRequest,
    twirp::{Code, TwirpError, TwirpRequest},
};

/// The answer to a scan that asks for vulnerabilities.
pub const NO_VULN_DB: &str = "this server has no vulnerability database; scan with --scanners secret,license (or without vuln)";

pub(crate) async fn scan(
    State(_s): State<ServerState>,
    req: TwirpRequest<ScanRequest>,
) -> Result<Response, TwirpError> {
    let options = req.message.options.clone().unwrap_or_default();
    if options.scanners.iter().any(|s| s == "vuln") {
        return Err(TwirpError::new(Code::FailedPrecondition, NO_VULN_DB));
    }
    Err(TwirpError::new(
        Code::Unimplemented,
        "scan is not implemented yet",
    ))
}
