//! The server's counters, in Prometheus' text format at `GET /metrics`, and the same
//! counters as the one-line summary logged at shutdown.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// The RPC a request named, as the `method` label (`other` for anything else): the
/// reference's, then those of scancache's own service ([`crate::native::METHODS`]).
pub const METHODS: [&str; 21] = [
    "PutArtifact",
    "PutBlob",
    "MissingBlobs",
    "DeleteBlobs",
    "Scan",
    "Missing",
    "Read",
    "PutValues",
    "Write",
    "Delete",
    "List",
    "Export",
    "Clear",
    "Gc",
    "Stats",
    "Compact",
    "Claim",
    "Renew",
    "Release",
    "AwaitRelease",
    "other",
];

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    code: &'static str,
}

/// Labels of the latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

/// Every counter the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    missing_hits: Counter,
    missing_misses: Counter,
    put_blobs: Counter,
    put_blob_bytes: Counter,
    received: Counter,
    sent: Counter,
    in_flight: Gauge,
    backend_errors: Counter,
    over_cap: Counter,
    claims: Counter,
    waits: Counter,
    wait_seconds: Counter<f64, AtomicU64>,
    takeovers: Counter,
    expired_leases: Counter,
    forwarded_claims: Counter,
    forwarded_busy: Counter,
    forwarded_waits: Counter,
    forwarded_wait_seconds: Counter<f64, AtomicU64>,
    forwarded_wait_timeouts: Counter,
    failed: AtomicU64,
    total: AtomicU64,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        0.0001, 2.0, 19,
    ))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh counters, registered under `scancache_server_*`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scancache_server");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let missing_hits = Counter::default();
        let missing_misses = Counter::default();
        let put_blobs = Counter::default();
        let put_blob_bytes = Counter::default();
        let received = Counter::default();
        let sent = Counter::default();
        let in_flight = Gauge::default();
        let backend_errors = Counter::default();
        let over_cap = Counter::default();
        registry.register(
            "requests",
            "Twirp requests by method and Twirp code (ok for success)",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Twirp request latency by method",
            latency.clone(),
        );
        registry.register(
            "missing_blobs_hits",
            "Blobs MissingBlobs found in the cache",
            missing_hits.clone(),
        );
        registry.register(
            "missing_blobs_misses",
            "Blobs MissingBlobs reported missing",
            missing_misses.clone(),
        );
        registry.register("put_blobs", "Blobs stored by PutBlob", put_blobs.clone());
        registry.register(
            "put_blob_bytes",
            "Request body bytes of stored PutBlob calls",
            put_blob_bytes.clone(),
        );
        registry.register(
            "received_bytes",
            "Request body bytes received (as sent, before decompression)",
            received.clone(),
        );
        registry.register("sent_bytes", "Response body bytes sent", sent.clone());
        registry.register(
            "requests_in_flight",
            "Twirp requests being served",
            in_flight.clone(),
        );
        registry.register(
            "backend_errors",
            "Cache backend operations that failed",
            backend_errors.clone(),
        );
        registry.register(
            "documents_over_cap",
            "Documents refused because they are over the document size cap (--max-document-size)",
            over_cap.clone(),
        );
        let claims = Counter::default();
        let waits = Counter::default();
        let wait_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        let takeovers = Counter::default();
        let expired_leases = Counter::default();
        registry.register(
            "claims",
            "Layer claims MissingBlobs took for its caller (the caller uploads the layer)",
            claims.clone(),
        );
        registry.register(
            "claim_waits",
            "Layers MissingBlobs waited for because another caller's claim was live",
            waits.clone(),
        );
        registry.register(
            "claim_wait_seconds",
            "Time MissingBlobs requests spent waiting for other callers' layers",
            wait_seconds.clone(),
        );
        registry.register(
            "claim_takeovers",
            "Claims taken over after they ended without a PutBlob",
            takeovers.clone(),
        );
        registry.register(
            "claim_expired_leases",
            "Claims whose lease ran out without a PutBlob, and waits that reached the lease",
            expired_leases.clone(),
        );
        let forwarded_claims = Counter::default();
        let forwarded_busy = Counter::default();
        let forwarded_waits = Counter::default();
        let forwarded_wait_seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        let forwarded_wait_timeouts = Counter::default();
        registry.register(
            "forwarded_claims",
            "Layer claims the Claim RPC granted to remote backends (the caller analyses the layer)",
            forwarded_claims.clone(),
        );
        registry.register(
            "forwarded_claims_busy",
            "Layers the Claim RPC found claimed by another caller",
            forwarded_busy.clone(),
        );
        registry.register(
            "forwarded_claim_waits",
            "AwaitRelease requests: remote backends waiting for another caller's claim",
            forwarded_waits.clone(),
        );
        registry.register(
            "forwarded_claim_wait_seconds",
            "Time AwaitRelease requests spent waiting",
            forwarded_wait_seconds.clone(),
        );
        registry.register(
            "forwarded_claim_wait_timeouts",
            "AwaitRelease requests answered before the claim ended (their timeout or the server's cap)",
            forwarded_wait_timeouts.clone(),
        );
        Metrics {
            registry,
            forwarded_claims,
            forwarded_busy,
            forwarded_waits,
            forwarded_wait_seconds,
            forwarded_wait_timeouts,
            claims,
            waits,
            wait_seconds,
            takeovers,
            expired_leases,
            requests,
            latency,
            missing_hits,
            missing_misses,
            put_blobs,
            put_blob_bytes,
            received,
            sent,
            in_flight,
            backend_errors,
            over_cap,
            failed: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// The `method` label of a request path under `prefix`.
    pub fn method_of(prefix: &str, path: &str) -> &'static str {
        const ROUTES: [(&str, &str); 5] = [
            ("trivy.cache.v1.Cache", "PutArtifact"),
            ("trivy.cache.v1.Cache", "PutBlob"),
            ("trivy.cache.v1.Cache", "MissingBlobs"),
            ("trivy.cache.v1.Cache", "DeleteBlobs"),
            ("trivy.scanner.v1.Scanner", "Scan"),
        ];
        let route = path
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('/'))
            .and_then(|r| r.split_once('/'));
        route
            .and_then(|(service, method)| {
                let reference = ROUTES
                    .iter()
                    .find(|(s, m)| *s == service && *m == method)
                    .map(|(_, m)| *m);
                let native = || {
                    (service == crate::native::SERVICE)
                        .then(|| crate::native::METHODS.into_iter().find(|m| *m == method))
                        .flatten()
                };
                reference.or_else(native)
            })
            .unwrap_or("other")
    }

    /// Counts one finished request.
    pub fn request_done(&self, method: &'static str, code: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { method, code })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(seconds);
        self.total.fetch_add(1, Ordering::Relaxed);
        if code != "ok" {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request started; the guard counts it finished when dropped.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Counts the answer of a `MissingBlobs` call.
    pub fn missing_blobs(&self, asked: usize, missing: usize) {
        self.missing_hits
            .inc_by(u64::try_from(asked.saturating_sub(missing)).unwrap_or(u64::MAX));
        self.missing_misses
            .inc_by(u64::try_from(missing).unwrap_or(u64::MAX));
    }

    /// Counts a stored blob and its request size.
    pub fn put_blob(&self, bytes: usize) {
        self.put_blobs.inc();
        self.put_blob_bytes
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    /// Counts request body bytes.
    pub fn received(&self, bytes: u64) {
        self.received.inc_by(bytes);
    }

    /// Counts response body bytes.
    pub fn sent(&self, bytes: u64) {
        self.sent.inc_by(bytes);
    }

    /// Counts a failed backend operation.
    pub fn backend_error(&self) {
        self.backend_errors.inc();
    }

    /// Counts a document refused for being over the document size cap.
    pub fn document_over_cap(&self) {
        self.over_cap.inc();
    }

    /// Counts a claim taken for a caller.
    pub fn claimed(&self) {
        self.claims.inc();
    }

    /// Counts a layer waited for.
    pub fn waited(&self) {
        self.waits.inc();
    }

    /// Adds the time one request waited.
    pub fn wait_time(&self, waited: Duration) {
        self.wait_seconds.inc_by(waited.as_secs_f64());
    }

    /// Counts a claim taken over.
    pub fn taken_over(&self) {
        self.takeovers.inc();
    }

    /// Counts a lease that ran out.
    pub fn expired(&self) {
        self.expired_leases.inc();
    }

    /// Counts the answers of a `Claim` request: keys granted and keys busy.
    pub fn forwarded_claims(&self, owned: usize, busy: usize) {
        self.forwarded_claims
            .inc_by(u64::try_from(owned).unwrap_or(u64::MAX));
        self.forwarded_busy
            .inc_by(u64::try_from(busy).unwrap_or(u64::MAX));
    }

    /// Counts an `AwaitRelease` request, the time it waited, and whether the claim ended
    /// within it.
    pub fn forwarded_wait(&self, waited: Duration, released: bool) {
        self.forwarded_waits.inc();
        self.forwarded_wait_seconds.inc_by(waited.as_secs_f64());
        if !released {
            self.forwarded_wait_timeouts.inc();
        }
    }

    /// The number of stored blobs so far.
    pub fn put_blob_count(&self) -> u64 {
        self.put_blobs.get()
    }

    /// Everything in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The one-line summary of the counters.
    pub fn summary(&self) -> String {
        let total = self.total.load(Ordering::Relaxed);
        let mut s = format!(
            "{total} requests ({} failed)",
            self.failed.load(Ordering::Relaxed)
        );
        let _ = write!(
            s,
            ", MissingBlobs {} hits {} misses, PutBlob {} ({} bytes), {} bytes in, {} bytes out, {} backend errors",
            self.missing_hits.get(),
            self.missing_misses.get(),
            self.put_blobs.get(),
            self.put_blob_bytes.get(),
            self.received.get(),
            self.sent.get(),
            self.backend_errors.get()
        );
        s
    }
}

/// Counts one request in flight while it lives.
pub struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_bounded() {
        for (path, want) in [
            ("/twirp/trivy.cache.v1.Cache/PutBlob", "PutBlob"),
            ("/twirp/trivy.scanner.v1.Scanner/Scan", "Scan"),
            ("/twirp/trivy.cache.v1.Cache/Scan", "other"),
            ("/twirp/trivy.cache.v1.Cache/Nope", "other"),
            ("/twirp/scancache.cache.v1.Cache/Read", "Read"),
            (
                "/twirp/scancache.cache.v1.Cache/AwaitRelease",
                "AwaitRelease",
            ),
            ("/twirp/trivy.cache.v1.Cache/Claim", "other"),
            ("/twirp/scancache.cache.v1.Cache/PutBlob", "other"),
            ("/twirp/trivy.cache.v1.Cache/Read", "other"),
            ("/other/trivy.cache.v1.Cache/PutBlob", "other"),
            ("/healthz", "other"),
        ] {
            assert_eq!(Metrics::method_of("/twirp", path), want, "{path}");
        }
    }

    #[test]
    fn text_format_and_summary() {
        let m = Metrics::new();
        m.request_done("PutBlob", "ok", 0.001);
        m.request_done("Scan", "failed_precondition", 0.002);
        m.missing_blobs(3, 1);
        m.put_blob(10);
        let text = m.encode();
        assert!(
            text.contains(r#"scancache_server_requests_total{method="PutBlob",code="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("scancache_server_missing_blobs_hits_total 2"),
            "{text}"
        );
        assert!(
            text.contains("scancache_server_request_duration_seconds_bucket"),
            "{text}"
        );
        let summary = m.summary();
        assert!(summary.starts_with("2 requests (1 failed)"), "{summary}");
        assert!(
            summary.contains("MissingBlobs 2 hits 1 misses, PutBlob 1 (10 bytes)"),
            "{summary}"
        );
    }
}
