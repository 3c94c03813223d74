//! [`DelayProxy`]: a TCP proxy on a free loopback port that delays every chunk of data by
//! a fixed time in each direction, so that the wall time of a client's work, divided by
//! twice the delay, counts its round trips.
//!
//! Each chunk read from one side is written to the other once `delay` has passed since it
//! arrived, in order; chunks in flight do not wait for one another, so a pipeline costs
//! one delay however many packets carry it, and commands sent one after another waiting
//! for each answer cost one round trip (`2 × delay`) each. It speaks no protocol, so TLS
//! goes through it unchanged.
//!
//! ```no_run
//! use std::time::Duration;
//! use cache_testkit::proxy::DelayProxy;
//! let proxy = DelayProxy::start(6379, Duration::from_millis(50));
//! let url = format!("redis://127.0.0.1:{}", proxy.port());
//! # let _ = url;
//! ```

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

/// A running proxy; it stops accepting when dropped (connections already open carry on
/// until either side closes them).
pub struct DelayProxy {
    port: u16,
    stop: Arc<AtomicBool>,
    connections: Arc<AtomicU64>,
}

impl DelayProxy {
    /// Listens on a free loopback port and forwards every connection to
    /// `127.0.0.1:<upstream>`, delaying each direction by `delay`.
    pub fn start(upstream: u16, delay: Duration) -> DelayProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicU64::new(0));
        let (stop2, count) = (Arc::clone(&stop), Arc::clone(&connections));
        thread::spawn(move || {
            for client in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                count.fetch_add(1, Ordering::AcqRel);
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    delay,
                );
                pipe(server, client, delay);
            }
        });
        DelayProxy {
            port,
            stop,
            connections,
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Acquire)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to`, each chunk `delay` after it arrived: a reader thread stamps
/// chunks, a writer thread sends them when due.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    thread::spawn(move || {
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
