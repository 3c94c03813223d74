//! The remote backend from the command line: round trips of a warm rescan counted
//! through a delaying proxy, uploads of a cold scan, the admin token, usage errors, TLS
//! with a private CA, secrets never shown.

use std::time::{Duration, Instant};

use cache_testkit::{http::ScancacheServer, proxy::DelayProxy, redis::Certs};

use crate::support::{ADMIN, BIN, TOKEN, metric, run, sample, start_server, tempdir};

/// `--cache-backend URL --token T [--admin-token A]`.
fn remote(url: &str, admin: bool) -> Vec<String> {
    let mut args = vec![
        "--cache-backend".into(),
        url.into(),
        "--token".into(),
        TOKEN.into(),
    ];
    if admin {
        args.extend(["--admin-token".into(), ADMIN.into()]);
    }
    args
}

fn with<'a>(base: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    base.iter()
        .map(String::as_str)
        .chain(rest.iter().copied())
        .collect()
}

/// The wall time of a warm rescan through a proxy that delays every packet by 100 ms
/// each way, minus the same rescan straight to the server, divided by the 200 ms of a
/// round trip, is the number of round trips the rescan made: one `Missing` and one `Read`
/// of every layer. A cold scan uploads each layer once.
#[test]
fn warm_rescan_costs_two_round_trips_and_a_cold_scan_uploads_each_layer_once() {
    let dir = tempdir();
    let server = start_server(&["--cache-dir".into(), dir.path().display().to_string()]);
    let direct = remote(&server.url(), false);
    let input = sample("debian.tar").display().to_string();
    let scan = with(&direct, &["-q", "image", "--input", &input]);
    run(&scan).ok();
    assert_eq!(metric(&server, "scancache_server_put_blobs_total"), 2.0);
    let put_calls = metric(
        &server,
        "scancache_server_requests_total{method=\"PutValues\",code=\"ok\"}",
    );
    assert!(put_calls >= 1.0, "the layers went up in PutValues calls");

    let delay = Duration::from_millis(100);
    let proxy = DelayProxy::start(server.port(), delay);
    let proxied = remote(&format!("http://127.0.0.1:{}", proxy.port()), false);
    let scan_proxied = with(&proxied, &["-q", "image", "--input", &input]);
    let timed = |args: &[&str]| {
        let started = Instant::now();
        let r = run(args).ok();
        (started.elapsed(), r)
    };
    // The best of three of each, so a busy machine does not count as a round trip.
    let best = |args: &[&str]| (0..3).map(|_| timed(args)).min_by_key(|(t, _)| *t).unwrap();
    let (straight, _) = best(&scan);
    let (through, out) = best(&scan_proxied);
    assert!(out.stdout().contains("2 from cache"), "{}", out.explain());
    let rtt = 2 * delay;
    let round_trips = (through.saturating_sub(straight)).as_secs_f64() / rtt.as_secs_f64();
    eprintln!(
        "warm rescan: {through:?} through the proxy, {straight:?} direct: {round_trips:.2} \
         round trips of {rtt:?}"
    );
    assert!(
        (1.5..2.5).contains(&round_trips),
        "a warm rescan made {round_trips:.2} round trips ({through:?} through the proxy, \
         {straight:?} direct)"
    );
    assert_eq!(
        metric(&server, "scancache_server_put_blobs_total"),
        2.0,
        "warm rescans upload nothing"
    );
}

/// Commands that change or dump the cache need the admin token; a server without one
/// refuses them all; the others need only the token.
#[test]
fn admin_commands_need_the_admin_token() {
    let dir = tempdir();
    let server = start_server(&["--cache-dir".into(), dir.path().display().to_string()]);
    let input = sample("debian.tar").display().to_string();
    let user = remote(&server.url(), false);
    let admin = remote(&server.url(), true);
    run(&with(&user, &["-q", "image", "--input", &input])).ok();
    run(&with(&user, &["cache", "stats"]))
        .ok()
        .shows_no_secret();
    run(&with(&user, &["cache", "ls"])).ok();
    let backup = dir.path().join("backup.ndjson").display().to_string();
    run(&with(&admin, &["cache", "export", &backup])).ok();
    let export = dir.path().join("export.ndjson").display().to_string();
    let id = format!("sha256:{}", "0".repeat(64));
    for cmd in [
        vec!["cache", "gc"],
        vec!["cache", "export", &export],
        vec!["cache", "rm", &id],
        vec!["clean", "--scan-cache"],
    ] {
        run(&with(&user, &cmd))
            .fails_with(1, "needs the admin token (header Scancache-Admin-Token)")
            .shows_no_secret();
        run(&with(&admin, &cmd)).ok().shows_no_secret();
    }
    let blobs = |args: &[String]| {
        let stats = run(&with(args, &["cache", "stats", "--format", "json"])).ok();
        let stats: serde_json::Value = serde_json::from_str(stats.stdout().trim()).unwrap();
        stats["blobs"].as_u64().unwrap()
    };
    assert_eq!(
        blobs(&user),
        0,
        "clean --scan-cache emptied the server's cache"
    );
    run(&with(&user, &["cache", "import", &backup])).fails_with(1, "admin token");
    run(&with(&admin, &["cache", "import", &backup])).ok();
    assert_eq!(blobs(&user), 2, "the import restored the layers");

    let mut bare = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &[],
        &[],
    );
    let to_bare = remote(&bare.url(), true);
    run(&with(&to_bare, &["cache", "gc"]))
        .fails_with(1, "started without an admin token")
        .shows_no_secret();
    run(&with(&to_bare, &["cache", "stats"])).ok();
    bare.stop();
    assert!(
        !bare.log().contains(TOKEN) && !bare.log().contains(ADMIN),
        "{}",
        bare.log()
    );
}

/// The TTL, its refresh and the size bound are the server's: asking the client for them
/// is a usage error that says so. A malformed URL is a usage error too.
#[test]
fn client_side_ttl_size_and_bad_urls_are_usage_errors() {
    let given: [&[&str]; 3] = [
        &["--cache-ttl", "1h"],
        &["--cache-max-size", "1GiB"],
        &["--cache-ttl-refresh"],
    ];
    for option in given {
        let flag = option[0];
        let mut args = vec!["--cache-backend", "http://127.0.0.1:9"];
        args.extend_from_slice(option);
        args.extend(["cache", "stats"]);
        let r = run(&args);
        assert_eq!(r.code(), Some(2), "{}", r.explain());
        assert!(
            r.stderr().contains(&format!(
                "{flag} cannot be used with a remote backend (http://127.0.0.1:9): the \
                 server applies its own"
            )),
            "{}",
            r.explain()
        );
    }
    for (url, why) in [
        ("http://:4954", "names no host"),
        ("http://user:pw-never-shown@h:1", "credentials"),
        ("http://h:x", "port that is not a number"),
    ] {
        let r = run(&["--cache-backend", url, "cache", "stats"]);
        assert_eq!(r.code(), Some(2), "{}", r.explain());
        assert!(r.stderr().contains(why), "{}", r.explain());
        assert!(!r.stderr().contains("pw-never-shown"), "{}", r.explain());
    }
}

/// A wrong token, a server that is down, a URL where no scancache service is: one line
/// each, exit 1, for a command about the cache itself.
#[test]
fn cache_commands_fail_clearly() {
    let server = start_server(&["--cache-backend".into(), "memory".into()]);
    let wrong = [
        "--cache-backend",
        &server.url(),
        "--token",
        "wrong-token-never-shown",
        "cache",
        "stats",
    ]
    .map(String::from);
    let r = run(&wrong.iter().map(String::as_str).collect::<Vec<_>>())
        .fails_with(1, "Stats: unauthenticated: invalid token");
    assert!(
        !r.stderr().contains("wrong-token-never-shown"),
        "{}",
        r.explain()
    );
    let port = cache_testkit::redis::free_port();
    let down = format!("http://127.0.0.1:{port}");
    run(&with(&remote(&down, false), &["cache", "stats"]))
        .fails_with(1, "is unavailable: Stats: cannot connect");
    // The reference's own routes are there, but not scancache's service under /other.
    let wrong_prefix = format!("{}/other", server.url());
    run(&with(&remote(&wrong_prefix, false), &["cache", "ls"])).fails_with(1, "has no List route");
}

/// An https server whose certificate a private CA signed: trusted with --server-ca, a
/// clear refusal without it — a misconfiguration, so even a scan fails rather than going
/// on without its cache.
#[test]
fn https_with_a_private_ca() {
    let dir = tempdir();
    let certs = Certs::generate(dir.path());
    let (cert, key) = (
        certs.server_cert.display().to_string(),
        certs.server_key.display().to_string(),
    );
    let server = ScancacheServer::start(
        BIN,
        &["--cache-backend", "memory", "--token", TOKEN],
        &["--tls-cert", &cert, "--tls-key", &key],
        &[],
    );
    let url = format!("https://127.0.0.1:{}", server.port());
    let base = remote(&url, false);
    let ca = certs.ca.display().to_string();
    let input = sample("debian.tar").display().to_string();
    run(&with(
        &base,
        &["--server-ca", &ca, "-q", "image", "--input", &input],
    ))
    .ok();
    let stats = run(&with(&base, &["--server-ca", &ca, "cache", "stats"])).ok();
    assert!(
        stats.stdout().contains("blobs:      2"),
        "{}",
        stats.explain()
    );
    run(&with(&base, &["cache", "stats"])).fails_with(1, "TLS handshake failed");
    run(&with(&base, &["image", "--input", &input])).fails_with(1, "TLS handshake failed");
    let missing = dir.path().join("absent.pem").display().to_string();
    run(&with(&base, &["--server-ca", &missing, "cache", "stats"]))
        .fails_with(1, "invalid --server-ca: cannot read");
}
