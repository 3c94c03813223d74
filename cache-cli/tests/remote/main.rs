//! scancache as a client, end to end with real processes: the remote backend against
//! `scancache server` processes started here with each backend behind them, `scancache
//! image --server` against `scancache server` and the reference's `trivy server`,
//! `scancache fs|rootfs|sbom --server` and the reference's client of them, and
//! scans that go on when their cache is unavailable.
//!
//! - `conformance`: the whole conformance suite through the remote backend, with fs,
//!   memory and Redis behind the server (a server per cache, started with the case's
//!   TTL).
//! - `remote`: the remote backend from the command line — admin token, usage errors,
//!   secrets never shown, round trips of a warm rescan counted through a delaying proxy.
//! - `client`: `image --server` compared with `trivy image --server` on the same server.
//! - `targets`: `fs`, `rootfs` and `sbom --server` compared with the local scans, and
//!   `trivy fs|rootfs|sbom --server` against `scancache server` with `trivy` alone.
//! - `fallback`: every backend unavailable before and during a scan.

#![allow(clippy::unwrap_used)]

mod client;
mod conformance;
mod fallback;
mod remote;
mod support;
mod targets;
