//! The connection pool, running commands with timeouts and one retry on a dropped
//! connection, and turning Redis errors into [`cache_core::Error`]s without secrets.
//!
//! Connections are multiplexed: a single command holds a pooled connection only long
//! enough to clone its handle, so commands from concurrent tasks share a connection and
//! travel together (several per write and per read). Holding a connection for the whole
//! command would send each on its own, and cost a quarter to a third of the throughput
//! (BENCHMARKS.md). The pool hands out the most recently returned connection first, so
//! commands keep sharing one even after a burst has opened more. Pipelines — batches,
//! some large — keep theirs while they run.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use cache_core::{Error, Result, Setting};
use deadpool::managed::{
    self, Metrics, Object, PoolError, QueueMode, RecycleError, RecycleResult, TimeoutType, Timeouts,
};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, Pipeline,
    RedisError, aio::MultiplexedConnection,
};

use crate::{
    config::{Redactor, RedisConfig, parse_url},
    tls,
};

/// A pooled connection idle longer than this is checked with a `PING` before it is handed
/// out again. A connection in steady use is handed out without one, so an operation costs
/// exactly its own round trips; a connection that broke while in use is retired by
/// [`Redis::query`].
const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Makes connections through deadpool-redis and recycles them without a round trip unless
/// they sat idle (deadpool-redis' own manager sends `PING` on every checkout, which would
/// double the round trips of every operation).
pub(crate) struct Connector {
    inner: deadpool_redis::Manager,
    /// Connections made in an earlier generation are retired when next checked out.
    generation: Arc<AtomicU64>,
}

/// A pooled connection, the generation it was made in, and whether a command on it has
/// timed out.
pub(crate) struct Conn {
    conn: MultiplexedConnection,
    generation: u64,
    timed_out: Arc<AtomicBool>,
}

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<Conn, RedisError> {
        // Read before connecting: a retirement that happens meanwhile also retires this.
        let generation = self.generation.load(Ordering::Acquire);
        let conn = managed::Manager::create(&self.inner).await?;
        Ok(Conn {
            conn,
            generation,
            timed_out: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<RedisError> {
        if conn.generation < self.generation.load(Ordering::Acquire) {
            return Err(RecycleError::message("retired after a connection broke"));
        }
        if conn.timed_out.load(Ordering::Acquire) {
            return Err(RecycleError::message("retired after a command timed out"));
        }
        if metrics.last_used() >= PING_AFTER_IDLE {
            redis::cmd("PING")
                .query_async::<String>(&mut conn.conn)
                .await?;
        }
        Ok(())
    }
}

/// One request: a single command or a pipeline.
pub(crate) enum Request<'a> {
    /// A single command.
    Cmd(&'a Cmd),
    /// Several commands sent together, answered together.
    Pipe(&'a Pipeline),
}

/// A pool of connections to one Redis database, and everything needed to report its
/// errors safely.
pub(crate) struct Redis {
    pool: managed::Pool<Connector>,
    /// Shared with the pool's [`Connector`]; raised to retire connections.
    generation: Arc<AtomicU64>,
    /// The URL with any password masked.
    pub(crate) location: String,
    redactor: Redactor,
    tls: bool,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl Redis {
    /// Validates the configuration and builds the pool; connects nothing yet.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self> {
        let target = parse_url(&config.url)?;
        let tls = target.tls || config.uses_tls();
        let certificates = if tls { tls::load(config)? } else { None };
        if tls {
            // rustls needs a process-wide crypto provider; install ring unless the program
            // already chose one (then this is a no-op).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut info = target.info;
        if tls && !target.tls {
            info = info.set_addr(ConnectionAddr::TcpTls {
                host: target.host.clone(),
                port: target.port,
                insecure: false,
                tls_params: None,
            });
        }
        let config_error = |e: RedisError| Error::Config {
            setting: Setting::Backend,
            reason: format!(
                "{}: {}",
                target.location,
                target.redactor.scrub(&e.to_string())
            ),
        };
        let client = match certificates {
            Some(certs) => Client::build_with_tls(info, certs).map_err(config_error)?,
            None => Client::open(info).map_err(config_error)?,
        };
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let manager = deadpool_redis::Manager::new_with_config(
            client.get_connection_info().clone(),
            connection_config,
        )
        .map_err(config_error)?;
        let timeouts = Timeouts {
            // Deadpool's own bounds sit just above the client's, so the client's clearer
            // errors win the race and deadpool's only catch what it misses.
            create: Some(config.connect_timeout + Duration::from_millis(500)),
            wait: Some(config.connect_timeout + config.command_timeout),
            recycle: Some(config.command_timeout),
        };
        let generation = Arc::new(AtomicU64::new(0));
        let connector = Connector {
            inner: manager,
            generation: Arc::clone(&generation),
        };
        let pool = managed::Pool::builder(connector)
            .max_size(config.pool_size.max(1))
            .timeouts(timeouts)
            .queue_mode(QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config {
                setting: Setting::Backend,
                reason: format!("{}: cannot build the connection pool: {e}", target.location),
            })?;
        Ok(Redis {
            pool,
            generation,
            location: target.location,
            redactor: target.redactor,
            tls,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
        })
    }

    /// Closes the pool: open connections are dropped, and later requests fail.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// Runs one request on a pooled connection.
    pub(crate) async fn query<T: FromRedisValue>(&self, what: &str, req: Request<'_>) -> Result<T> {
        self.attempt(what, req)
            .await?
            .map_err(|e| self.error(what, &e))
    }

    /// Runs one pipeline, and returns an error the server answered with (rather than a
    /// transport failure) as it is, for the caller to inspect.
    pub(crate) async fn pipe_or_refusal<T: FromRedisValue>(
        &self,
        what: &str,
        pipe: &Pipeline,
    ) -> Result<std::result::Result<T, RedisError>> {
        self.attempt(what, Request::Pipe(pipe)).await
    }

    /// Runs one request; transport failures become our errors, the server's own error
    /// answers are returned as they are.
    ///
    /// When a connection fails at the transport level, it and every connection of its
    /// generation or an older one are retired (a dropped connection usually means the
    /// server restarted, which dropped the others too); when a command times out, only
    /// its connection is. When it had simply been dropped, the request is sent once more
    /// on a fresh connection: every request this crate sends is idempotent in its effect
    /// on the data, and this is what lets the pool recover by itself. (A count in a reply
    /// — how many keys an `UNLINK` removed — can come out low when the first attempt had
    /// already run.)
    async fn attempt<T: FromRedisValue>(
        &self,
        what: &str,
        req: Request<'_>,
    ) -> Result<std::result::Result<T, RedisError>> {
        let mut retried = false;
        loop {
            let mut pooled = self.conn(what).await?;
            let generation = pooled.generation;
            let timed_out = Arc::clone(&pooled.timed_out);
            let result = match req {
                Request::Cmd(cmd) => {
                    // Back to the pool at once: concurrent commands share the connection.
                    let mut conn = pooled.conn.clone();
                    drop(pooled);
                    cmd.query_async::<T>(&mut conn).await
                }
                // A pipeline (a batch, perhaps a large one) keeps its connection checked
                // out while it runs, so that single commands checked out meanwhile go on
                // another one rather than wait behind it.
                Request::Pipe(pipe) => pipe.query_async::<T>(&mut pooled.conn).await,
            };
            match result {
                Ok(value) => return Ok(Ok(value)),
                Err(e) if is_broken(&e) => {
                    if e.is_timeout() {
                        // The server is slow or the command large; other connections
                        // may be fine, so only this one is retired.
                        timed_out.store(true, Ordering::Release);
                    } else {
                        self.generation.fetch_max(generation + 1, Ordering::AcqRel);
                    }
                    if !retried && !e.is_timeout() {
                        tracing::debug!(backend = %self.location, "connection lost, retrying: {}", self.redactor.scrub(&e.to_string()));
                        retried = true;
                        continue;
                    }
                    return Err(self.error(what, &e));
                }
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    /// Runs one command.
    pub(crate) async fn cmd<T: FromRedisValue>(&self, what: &str, cmd: &Cmd) -> Result<T> {
        self.query(what, Request::Cmd(cmd)).await
    }

    /// Runs one pipeline: one round trip however many commands it holds.
    pub(crate) async fn pipe<T: FromRedisValue>(&self, what: &str, pipe: &Pipeline) -> Result<T> {
        self.query(what, Request::Pipe(pipe)).await
    }

    /// A pooled connection.
    async fn conn(&self, what: &str) -> Result<Object<Connector>> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.error("cannot connect", &e),
            PoolError::Timeout(TimeoutType::Create) => self.unavailable(format!(
                "cannot connect: no answer within {:?}{}",
                self.connect_timeout,
                self.hint(true)
            )),
            PoolError::Timeout(TimeoutType::Recycle) => self.unavailable(format!(
                "cannot connect: an idle connection did not answer PING within {:?}",
                self.command_timeout
            )),
            PoolError::Timeout(TimeoutType::Wait) => self.unavailable(format!(
                "{what}: no pooled connection became free within {:?}",
                self.connect_timeout + self.command_timeout
            )),
            PoolError::Closed => Error::Backend {
                backend: self.location.clone(),
                message: format!("{what}: the cache has been closed"),
            },
            other => Error::Backend {
                backend: self.location.clone(),
                message: format!("{what}: {}", self.redactor.scrub(&other.to_string())),
            },
        })
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            backend: self.location.clone(),
            reason,
        }
    }

    /// Turns a Redis error into ours: a refused password or certificate is
    /// `Error::Denied` (a misconfiguration), transport problems make the backend
    /// unavailable, anything else is a failed operation. Messages are scrubbed
    /// of secrets.
    pub(crate) fn error(&self, what: &str, e: &RedisError) -> Error {
        let connecting = what == "cannot connect";
        let detail = self.redactor.scrub(&describe(e));
        let noauth = e.code() == Some("NOAUTH");
        let auth = noauth
            || matches!(e.kind(), ErrorKind::AuthenticationFailed)
            || e.code() == Some("WRONGPASS");
        let hint = if noauth {
            " (the server requires a password: redis://:password@host or \
             redis://user:password@host)"
        } else if auth {
            " (wrong user name or password)"
        } else if !connecting {
            ""
        } else if e.is_connection_refusal() {
            " (is Redis running at this address and port?)"
        } else if is_broken(e) {
            self.hint(e.is_timeout())
        } else {
            ""
        };
        let reason = format!("{what}: {detail}{hint}");
        if auth || is_certificate_refusal(e) {
            // A misconfiguration, not an outage: a scan must not go on without the cache
            // because its password or certificate is wrong.
            return Error::Denied {
                backend: self.location.clone(),
                reason,
            };
        }
        if connecting || is_broken(e) || e.is_connection_refusal() {
            self.unavailable(reason)
        } else {
            Error::Backend {
                backend: self.location.clone(),
                message: reason,
            }
        }
    }

    /// A guess at the cause of a connection that broke or hung while being set up.
    fn hint(&self, timed_out: bool) -> &'static str {
        match (self.tls, timed_out) {
            (true, true) => {
                " (no answer in time: is the server up, and speaking TLS on this port?)"
            }
            (true, false) => {
                " (the TLS handshake failed: is the server speaking TLS on this port, and does \
                 it accept this CA and client certificate?)"
            }
            (false, true) => {
                " (no answer in time: is the server up, and does it require TLS? then use \
                 rediss:// or the TLS option)"
            }
            (false, false) => {
                " (the server closed the connection: does it require TLS? then use rediss:// \
                 or the TLS option)"
            }
        }
    }
}

/// The text of an error, one line however many commands of a pipeline failed: the
/// redis crate lists every failed command, which for a large batch is a page of text.
fn describe(e: &RedisError) -> String {
    match e.clone().into_server_errors() {
        Some(answers) if answers.len() > 1 => {
            let (index, first) = &answers[0];
            format!(
                "{} commands of a pipeline failed; command {index}: {} {}",
                answers.len(),
                first.code(),
                first.details().unwrap_or_default()
            )
        }
        _ => e.to_string(),
    }
}

/// True when the TLS handshake failed because a certificate was refused (the server's by
/// this client's CA, or this client's by the server).
fn is_certificate_refusal(e: &RedisError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::AlertReceived(
                        rustls::AlertDescription::BadCertificate
                            | rustls::AlertDescription::UnknownCA
                            | rustls::AlertDescription::CertificateRequired
                            | rustls::AlertDescription::CertificateUnknown
                    )
            );
        }
        // The redis crate's source is the `Arc` it keeps its cause in, and an io::Error's
        // `source` skips the error it wraps: step into both.
        let shared = err.downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>();
        next = if let Some(shared) = shared {
            Some(&**shared as _)
        } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io.get_ref().map(|inner| inner as _)
        } else {
            err.source()
        };
    }
    false
}

/// True for errors after which a connection must not be used again.
fn is_broken(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}
