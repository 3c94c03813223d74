//! A minimal HTTP/1.1 client for tests of `scancache server`, over a plain TCP stream:
//! one request per connection (`Connection: close`), so a test controls every byte it
//! sends — including bodies cut off mid-upload — and reads the whole answer.
//!
//! [`ScancacheServer`] runs the real `scancache server` process on a free loopback port,
//! restarts it on the same port, and stops it (SIGTERM) or kills it on drop.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::redis::free_port;

/// An HTTP answer.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The Twirp error code of an error body, if it is one.
    pub fn twirp_code(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("code")?.as_str().map(str::to_owned)
    }
}

/// Sends one request to `127.0.0.1:port` and reads the answer.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    read_response(&mut stream)
}

/// `GET path`.
pub fn get(port: u16, path: &str) -> io::Result<Response> {
    request(port, "GET", path, &[], &[])
}

/// `POST path` with a content type and extra headers.
pub fn post(
    port: u16,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    let mut all = vec![("Content-Type", content_type)];
    all.extend_from_slice(headers);
    request(port, "POST", path, &all, body)
}

/// Reads an HTTP/1.1 answer to the end of the connection.
pub fn read_response(stream: &mut impl Read) -> io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            io::Error::other(format!(
                "no HTTP head in {:?}",
                String::from_utf8_lossy(&raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"))
    {
        body = dechunk(&body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| io::Error::other("bad chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| io::Error::other("bad chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data
            .get(..size)
            .ok_or_else(|| io::Error::other("short chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

/// A running `scancache server` process, stopped on drop.
pub struct ScancacheServer {
    child: Option<Child>,
    port: u16,
    log_dir: TempDir,
    /// The command line it was started with (for failure messages).
    pub args: Vec<String>,
}

impl ScancacheServer {
    /// Starts `bin` as `scancache GLOBAL... server --listen 127.0.0.1:PORT SERVER...` on
    /// a free port, with `envs`, and waits until `/healthz` answers (over TLS when
    /// `server` has `--tls-cert`: then until the port accepts connections).
    pub fn start(
        bin: impl AsRef<Path>,
        global: &[&str],
        server: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let log_dir = tempfile::tempdir().expect("temp dir");
        let tls = server.contains(&"--tls-cert");
        let mut last_log = String::new();
        for _ in 0..5 {
            let port = free_port();
            let listen = format!("127.0.0.1:{port}");
            let mut args: Vec<String> = global.iter().map(|s| s.to_string()).collect();
            args.extend(["server".into(), "--listen".into(), listen]);
            args.extend(server.iter().map(|s| s.to_string()));
            let log = std::fs::File::create(log_dir.path().join("server.log")).expect("log");
            let mut cmd = Command::new(bin.as_ref());
            cmd.args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            for (k, v) in envs {
                cmd.env(k, v);
            }
            let mut child = cmd.spawn().expect("cannot run scancache");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                let up = if tls {
                    TcpStream::connect(("127.0.0.1", port)).is_ok()
                } else {
                    get(port, "/healthz").is_ok_and(|r| r.status == 200)
                };
                if up {
                    return ScancacheServer {
                        child: Some(child),
                        port,
                        log_dir,
                        args,
                    };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            last_log =
                std::fs::read_to_string(log_dir.path().join("server.log")).unwrap_or_default();
        }
        panic!("scancache server did not start: {last_log}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The file its stderr goes to.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.path().join("server.log")
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again with the same command line, on the same
    /// port, waiting until `/healthz` answers (or the port accepts connections, over TLS).
    pub fn restart(&mut self, bin: impl AsRef<Path>) {
        self.kill();
        let tls = self.args.iter().any(|a| a == "--tls-cert");
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.log_path())
            .expect("log");
        let mut child = Command::new(bin.as_ref())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot run scancache");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "scancache server exited on restart ({status}): {}",
                    self.log()
                );
            }
            let up = if tls {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                get(self.port, "/healthz").is_ok_and(|r| r.status == 200)
            };
            if up {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("scancache server did not restart: {}", self.log());
    }

    /// Sends SIGTERM and waits for the exit (killing it after 20 s).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for ScancacheServer {
    fn drop(&mut self) {
        self.kill();
    }
}
