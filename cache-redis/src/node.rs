//! [`Node`]: a pool of multiplexed connections to one Redis server, our connection
//! handshake, running commands with timeouts and one retry on a dropped connection, and
//! turning Redis errors into [`cache_core::Error`]s without secrets.
//!
//! **The handshake is one round trip.** The Redis client is given bare connection info
//! (no credentials, database or client name), so it sends nothing on connect; we then
//! send one pipeline: `AUTH` (when there is a password), `SELECT` (database other than
//! 0), `CLIENT SETINFO` ×2 (answers ignored: older servers and narrow ACLs refuse it), the
//! node's check (`PING`, or `ROLE` where the node must be a master), and whatever the
//! topology asks of its first node (`CLUSTER SLOTS`, `SENTINEL get-master-addr-by-name`).
//! A connection is ready once that answers: no separate `PING`. (With RESP3 asked for in
//! the URL, the client's own `HELLO` handshake runs first: one round trip more.)
//!
//! **Connections are multiplexed**: a single command holds a pooled connection only long
//! enough to clone its handle, so commands from concurrent tasks share a connection and
//! travel together (several per write and per read). Holding a connection for the whole
//! command would send each on its own, and cost a quarter to a third of the throughput
//! (BENCHMARKS.md). The pool hands out the most recently returned connection first, so
//! commands keep sharing one even after a burst has opened more. Pipelines — batches,
//! some large — keep theirs while they run.
//!
//! **Recycling** costs no round trip unless a connection sat idle for
//! [`CHECK_AFTER_IDLE`]; then it is checked again (`PING`, or `ROLE` for a node that must
//! still be a master, so a connection to a master demoted by a failover is dropped).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use cache_core::{Error, Result, Setting};
use deadpool::managed::{
    self, Metrics, Object, PoolError, QueueMode, RecycleError, RecycleResult, TimeoutType, Timeouts,
};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, Pipeline, ProtocolVersion,
    RedisConnectionInfo, RedisError, TlsCertificates, Value,
    aio::{ConnectionLike, MultiplexedConnection},
};

use crate::config::{Redactor, Target};

/// A pooled connection idle longer than this is checked (`PING` or `ROLE`) before it is
/// handed out again. A connection in steady use is handed out without one, so an
/// operation costs exactly its own round trips; a connection that broke while in use is
/// retired by the retry logic.
pub(crate) const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);

/// What the error says when a node that must be a master is not (a failover demoted it).
pub(crate) const NOT_A_MASTER: &str = "the server is not a master";

/// The library name sent with `CLIENT SETINFO`.
const LIB_NAME: &str = "scancache";

/// What every node of one cache shares: limits, TLS files, and how to report errors.
pub(crate) struct Settings {
    /// Most connections per node.
    pub(crate) pool_size: usize,
    /// Longest time to connect and finish the handshake.
    pub(crate) connect_timeout: Duration,
    /// Longest time to wait for one answer.
    pub(crate) command_timeout: Duration,
    /// A pooled connection idle this long is checked before reuse ([`CHECK_AFTER_IDLE`];
    /// tests shorten it).
    pub(crate) check_after_idle: Duration,
    /// The TLS files, when any TLS is used.
    pub(crate) certificates: Option<TlsCertificates>,
    /// The cache's location (every password masked), which errors name.
    pub(crate) backend: String,
    /// Scrubs every secret of the configuration.
    pub(crate) redactor: Redactor,
}

/// What a node must be, checked in the handshake and when an idle connection is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Answering (`PING`): a single server, a cluster node, a sentinel.
    Answers,
    /// A master (`ROLE`): the master a sentinel named. A demoted one fails the check.
    Master,
}

/// How one node is reached and named.
pub(crate) struct NodeOptions {
    /// The check.
    pub(crate) check: Check,
    /// Use TLS even when the target's URL is `redis://`.
    pub(crate) force_tls: bool,
    /// How errors name this node (`node 10.0.0.1:7001`); `None` for a single server,
    /// whose errors need no name beyond the backend's.
    pub(crate) label: Option<String>,
}

/// A pool of connections to one server.
pub(crate) struct Node {
    pool: managed::Pool<Connector>,
    /// Shared with the pool's [`Connector`]; raised to retire connections.
    generation: Arc<AtomicU64>,
    /// `host:port`.
    pub(crate) addr: String,
    report: Report,
}

/// Turns Redis errors into ours for one node.
#[derive(Clone)]
pub(crate) struct Report {
    backend: String,
    label: Option<String>,
    redactor: Redactor,
    tls: bool,
    connect_timeout: Duration,
    command_timeout: Duration,
}

/// Makes connections with our handshake, and recycles them without a round trip unless
/// they sat idle.
struct Connector {
    client: Client,
    config: AsyncConnectionConfig,
    handshake: Handshake,
    /// A connection made before the pool needed one (the first one, whose handshake
    /// also carried a topology's question), handed out by the next `create`.
    stash: Mutex<Vec<Conn>>,
    /// Connections made in an earlier generation are retired when next checked out.
    generation: Arc<AtomicU64>,
    /// See [`Settings::check_after_idle`].
    check_after_idle: Duration,
}

/// What the handshake pipeline sends.
#[derive(Clone)]
struct Handshake {
    username: Option<String>,
    password: Option<String>,
    db: i64,
    check: Check,
}

/// A pooled connection, the generation it was made in, and whether a command on it has
/// timed out.
struct Conn {
    conn: MultiplexedConnection,
    generation: u64,
    timed_out: Arc<AtomicBool>,
}

/// One request: a single command or a pipeline.
enum Request<'a> {
    /// A single command.
    Cmd(&'a Cmd),
    /// Several commands sent together, answered together.
    Pipe(&'a Pipeline),
}

impl managed::Manager for Connector {
    type Type = Conn;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<Conn, RedisError> {
        if let Some(conn) = self.stash.lock().expect("stash lock").pop() {
            return Ok(conn);
        }
        self.connect(&[]).await.map(|(conn, _)| conn)
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<RedisError> {
        if conn.generation < self.generation.load(Ordering::Acquire) {
            return Err(RecycleError::message("retired after a connection broke"));
        }
        if conn.timed_out.load(Ordering::Acquire) {
            return Err(RecycleError::message("retired after a command timed out"));
        }
        if metrics.last_used() >= self.check_after_idle {
            let answer = conn
                .conn
                .req_packed_command(&self.handshake.check_cmd())
                .await?;
            self.handshake.judge(answer)?;
        }
        Ok(())
    }
}

impl Connector {
    /// A new connection after our handshake, and the answers to `extra`, sent in the
    /// same pipeline.
    async fn connect(&self, extra: &[Cmd]) -> std::result::Result<(Conn, Vec<Value>), RedisError> {
        // Read before connecting: a retirement that happens meanwhile also retires this.
        let generation = self.generation.load(Ordering::Acquire);
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let (pipe, skip) = self.handshake.pipeline(extra);
        let mut answers = conn.req_packed_commands(&pipe, 0, pipe.len()).await?;
        let extra_answers = answers.split_off(skip.min(answers.len()));
        let mut answers = answers.into_iter();
        if self.handshake.password.is_some() {
            auth_answer(answers.next())?;
        }
        if self.handshake.db != 0 {
            answers.next().unwrap_or(Value::Nil).extract_error()?;
        }
        let check = answers.nth(2).unwrap_or(Value::Nil);
        self.handshake.judge(check)?;
        Ok((
            Conn {
                conn,
                generation,
                timed_out: Arc::new(AtomicBool::new(false)),
            },
            extra_answers,
        ))
    }
}

impl Handshake {
    /// The pipeline, and how many of its answers belong to the handshake itself.
    fn pipeline(&self, extra: &[Cmd]) -> (Pipeline, usize) {
        let mut pipe = redis::pipe();
        if let Some(password) = &self.password {
            pipe.cmd("AUTH");
            if let Some(user) = &self.username {
                pipe.arg(user);
            }
            pipe.arg(password);
        }
        if self.db != 0 {
            pipe.cmd("SELECT").arg(self.db);
        }
        pipe.cmd("CLIENT")
            .arg("SETINFO")
            .arg("LIB-NAME")
            .arg(LIB_NAME);
        pipe.cmd("CLIENT")
            .arg("SETINFO")
            .arg("LIB-VER")
            .arg(env!("CARGO_PKG_VERSION"));
        pipe.add_command(self.check_cmd());
        let skip = pipe.len();
        for cmd in extra {
            pipe.add_command(cmd.clone());
        }
        (pipe, skip)
    }

    fn check_cmd(&self) -> Cmd {
        match self.check {
            Check::Answers => redis::cmd("PING"),
            Check::Master => redis::cmd("ROLE"),
        }
    }

    /// The check's answer: an error answer is the server's error; for a master check,
    /// any role but `master` is an error saying which role it has.
    fn judge(&self, answer: Value) -> std::result::Result<(), RedisError> {
        let answer = answer.extract_error()?;
        if self.check == Check::Master {
            let role = match &answer {
                Value::Array(items) => items.first().and_then(|v| match v {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                    Value::SimpleString(s) => Some(s.clone()),
                    _ => None,
                }),
                _ => None,
            };
            if role.as_deref() != Some("master") {
                return Err(not_a_master(role.as_deref().unwrap_or("unknown")));
            }
        }
        Ok(())
    }
}

/// The error for a node that should be a master but is not (a failover demoted it).
fn not_a_master(role: &str) -> RedisError {
    RedisError::from((
        ErrorKind::Client,
        NOT_A_MASTER,
        format!("ROLE answers {role}"),
    ))
}

/// Judges the answer to `AUTH` as the Redis client would.
fn auth_answer(answer: Option<Value>) -> std::result::Result<(), RedisError> {
    match answer {
        Some(Value::Okay) => Ok(()),
        Some(Value::SimpleString(s)) if s == "OK" => Ok(()),
        Some(Value::ServerError(e)) => {
            if matches!(e.code(), "WRONGPASS" | "NOAUTH" | "NOPERM") {
                Err(e.into())
            } else {
                Err(RedisError::from((
                    ErrorKind::AuthenticationFailed,
                    "Password authentication failed",
                    e.details().unwrap_or(e.code()).to_owned(),
                )))
            }
        }
        _ => Err(RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ))),
    }
}

impl Node {
    /// Builds the pool for `target`; connects nothing yet.
    pub(crate) fn new(target: &Target, settings: &Settings, options: NodeOptions) -> Result<Node> {
        let tls = target.tls || options.force_tls;
        let mut info = target.info.clone();
        if tls && !target.tls {
            info = info.set_addr(ConnectionAddr::TcpTls {
                host: target.host.clone(),
                port: target.port,
                insecure: false,
                tls_params: None,
            });
        }
        let redis = info.redis_settings().clone();
        let resp3 = redis.protocol() != ProtocolVersion::RESP2;
        let handshake = Handshake {
            username: redis.username().map(str::to_owned),
            password: redis.password().map(str::to_owned),
            db: redis.db(),
            check: options.check,
        };
        // The client sends nothing on connect (the handshake is ours), except RESP3's
        // HELLO, which must authenticate too.
        let (handshake, client_settings) = if resp3 {
            let settings = redis.set_lib_name(LIB_NAME, env!("CARGO_PKG_VERSION"));
            (
                Handshake {
                    username: None,
                    password: None,
                    db: 0,
                    ..handshake
                },
                settings,
            )
        } else {
            (
                handshake,
                RedisConnectionInfo::default().set_skip_set_lib_name(),
            )
        };
        let info = info.set_redis_settings(client_settings);
        let report = Report {
            backend: settings.backend.clone(),
            label: options.label,
            redactor: settings.redactor.clone(),
            tls,
            connect_timeout: settings.connect_timeout,
            command_timeout: settings.command_timeout,
        };
        let config_error = |e: RedisError| Error::Config {
            setting: Setting::Backend,
            reason: format!(
                "{}: {}",
                target.location,
                settings.redactor.scrub(&e.to_string())
            ),
        };
        let client = match (&settings.certificates, tls) {
            (Some(certs), true) => {
                Client::build_with_tls(info, certs.clone()).map_err(config_error)?
            }
            _ => Client::open(info).map_err(config_error)?,
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.connect_timeout))
            .set_response_timeout(Some(settings.command_timeout));
        let timeouts = Timeouts {
            // Deadpool's own bounds sit just above the client's, so the client's clearer
            // errors win the race and deadpool's only catch what it misses.
            create: Some(settings.connect_timeout + Duration::from_millis(500)),
            wait: Some(settings.connect_timeout + settings.command_timeout),
            recycle: Some(settings.command_timeout),
        };
        let generation = Arc::new(AtomicU64::new(0));
        let connector = Connector {
            client,
            config,
            handshake,
            stash: Mutex::new(Vec::new()),
            generation: Arc::clone(&generation),
            check_after_idle: settings.check_after_idle,
        };
        let pool = managed::Pool::builder(connector)
            .max_size(settings.pool_size.max(1))
            .timeouts(timeouts)
            .queue_mode(QueueMode::Lifo)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Config {
                setting: Setting::Backend,
                reason: format!("{}: cannot build the connection pool: {e}", target.location),
            })?;
        Ok(Node {
            pool,
            generation,
            addr: target.addr(),
            report,
        })
    }

    /// Opens a connection now, with `extra` sent in the handshake's pipeline, and keeps
    /// it for the pool's next request: the topology's first question costs no round
    /// trip of its own. Returns the answers to `extra` (an error answer among them is
    /// returned as it is).
    pub(crate) async fn open(&self, extra: &[Cmd]) -> Result<Vec<Value>> {
        let bound = self.report.connect_timeout + Duration::from_millis(500);
        let connector = self.pool.manager();
        let (conn, answers) = match tokio::time::timeout(bound, connector.connect(extra)).await {
            Ok(Ok(made)) => made,
            Ok(Err(e)) => return Err(self.report.error("cannot connect", &e)),
            Err(_) => {
                return Err(self.report.unavailable(format!(
                    "cannot connect: no answer within {:?}{}",
                    self.report.connect_timeout,
                    self.report.hint(true)
                )));
            }
        };
        connector.stash.lock().expect("stash lock").push(conn);
        Ok(answers)
    }

    /// Closes the pool: open connections are dropped, and later requests fail.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// How errors of this node are reported.
    pub(crate) fn report(&self) -> &Report {
        &self.report
    }

    /// Runs commands on one connection: a single command shares it with concurrent
    /// ones, several go as one pipeline (one round trip). Answers come in order; a
    /// command the server refused answers [`Value::ServerError`]. Transport failures
    /// (after one retry on a dropped connection) are errors.
    pub(crate) async fn run(&self, what: &str, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
        match cmds.len() {
            0 => Ok(Vec::new()),
            1 => {
                let cmd = cmds.into_iter().next().expect("one command");
                Ok(vec![self.attempt(what, Request::Cmd(&cmd)).await?])
            }
            _ => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                match self.attempt(what, Request::Pipe(&pipe)).await? {
                    Value::Array(answers) => Ok(answers),
                    other => Err(self.report.backend_error(format!(
                        "{what}: unexpected answer to a pipeline: {other:?}"
                    ))),
                }
            }
        }
    }

    /// Runs one request; returns its answers as they came (a pipeline's as an array).
    ///
    /// When a connection fails at the transport level, it and every connection of its
    /// generation or an older one are retired (a dropped connection usually means the
    /// server restarted, which dropped the others too); when a command times out, only
    /// its connection is. When it had simply been dropped, the request is sent once more
    /// on a fresh connection: every request this crate sends is idempotent in its effect
    /// on the data, and this is what lets the pool recover by itself. (A count in a reply
    /// — how many keys an `UNLINK` removed — can come out low when the first attempt had
    /// already run.)
    async fn attempt(&self, what: &str, req: Request<'_>) -> Result<Value> {
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
                    conn.req_packed_command(cmd).await
                }
                // A pipeline (a batch, perhaps a large one) keeps its connection checked
                // out while it runs, so that single commands checked out meanwhile go on
                // another one rather than wait behind it.
                Request::Pipe(pipe) => pooled
                    .conn
                    .req_packed_commands(pipe, 0, pipe.len())
                    .await
                    .map(Value::Array),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(e) if is_broken(&e) => {
                    if e.is_timeout() {
                        // The server is slow or the command large; other connections
                        // may be fine, so only this one is retired.
                        timed_out.store(true, Ordering::Release);
                    } else {
                        self.generation.fetch_max(generation + 1, Ordering::AcqRel);
                    }
                    if !retried && !e.is_timeout() {
                        tracing::debug!(
                            backend = %self.report.backend,
                            node = %self.addr,
                            "connection lost, retrying: {}",
                            self.report.redactor.scrub(&e.to_string())
                        );
                        retried = true;
                        continue;
                    }
                    return Err(self.report.error(what, &e));
                }
                Err(e) => return Err(self.report.error(what, &e)),
            }
        }
    }

    /// A pooled connection.
    async fn conn(&self, what: &str) -> Result<Object<Connector>> {
        let r = &self.report;
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => r.error("cannot connect", &e),
            PoolError::Timeout(TimeoutType::Create) => r.unavailable(format!(
                "cannot connect: no answer within {:?}{}",
                r.connect_timeout,
                r.hint(true)
            )),
            PoolError::Timeout(TimeoutType::Recycle) => r.unavailable(format!(
                "cannot connect: an idle connection did not answer its check within {:?}",
                r.command_timeout
            )),
            PoolError::Timeout(TimeoutType::Wait) => r.unavailable(format!(
                "{what}: no pooled connection became free within {:?}",
                r.connect_timeout + r.command_timeout
            )),
            PoolError::Closed => r.backend_error(format!("{what}: the cache has been closed")),
            other => r.backend_error(format!("{what}: {}", r.redactor.scrub(&other.to_string()))),
        })
    }
}

impl Report {
    /// How errors of a whole cache (no node named) are reported.
    pub(crate) fn for_backend(settings: &Settings) -> Report {
        Report {
            backend: settings.backend.clone(),
            label: None,
            redactor: settings.redactor.clone(),
            tls: false,
            connect_timeout: settings.connect_timeout,
            command_timeout: settings.command_timeout,
        }
    }

    /// `reason`, after the node's name when it has one.
    fn named(&self, reason: String) -> String {
        match &self.label {
            Some(label) => format!("{label}: {reason}"),
            None => reason,
        }
    }

    /// An [`Error::Unavailable`] of this node.
    pub(crate) fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            backend: self.backend.clone(),
            reason: self.named(reason),
        }
    }

    /// An [`Error::Backend`] of this node.
    pub(crate) fn backend_error(&self, message: String) -> Error {
        Error::Backend {
            backend: self.backend.clone(),
            message: self.named(message),
        }
    }

    /// The first failed command among `answers` as our error, in one line however many
    /// failed; `None` when none did.
    pub(crate) fn failure(&self, what: &str, answers: &[Value]) -> Option<Error> {
        let mut failed = answers.iter().enumerate().filter_map(|(i, v)| match v {
            Value::ServerError(e) => Some((i, e)),
            _ => None,
        });
        let (index, first) = failed.next()?;
        let count = 1 + failed.count();
        let e = RedisError::from(first.clone());
        if count == 1 {
            return Some(self.error(what, &e));
        }
        let detail = format!(
            "{count} commands of a pipeline failed; command {index}: {} {}",
            first.code(),
            first.details().unwrap_or_default()
        );
        Some(self.classify(what, &e, detail))
    }

    /// Turns a Redis error into ours: a refused password or certificate is
    /// `Error::Denied` (a misconfiguration), transport problems make the backend
    /// unavailable, anything else is a failed operation. Messages are scrubbed of
    /// secrets.
    pub(crate) fn error(&self, what: &str, e: &RedisError) -> Error {
        self.classify(what, e, e.to_string())
    }

    fn classify(&self, what: &str, e: &RedisError, detail: String) -> Error {
        let connecting = what == "cannot connect";
        let detail = self.redactor.scrub(&detail);
        let noauth = e.code() == Some("NOAUTH");
        let auth = noauth
            || matches!(e.kind(), ErrorKind::AuthenticationFailed)
            || e.code() == Some("WRONGPASS");
        let hint = if noauth {
            " (the server requires a password: redis://:password@host or \
             redis://user:password@host)"
        } else if auth {
            " (wrong user name or password)"
        } else if e.code() == Some("MOVED") && self.label.is_none() {
            " (the server is a Redis Cluster node: give the cluster's nodes as a \
             comma-separated list, e.g. redis://h1:7000,redis://h2:7001)"
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
                backend: self.backend.clone(),
                reason: self.named(reason),
            };
        }
        if connecting || is_broken(e) || e.is_connection_refusal() {
            self.unavailable(reason)
        } else {
            self.backend_error(reason)
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

#[cfg(test)]
mod tests {
    use cache_testkit::redis::{self as support, RedisServer, ServerOptions};

    use super::*;
    use crate::config::parse_url;

    fn settings() -> Settings {
        Settings {
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(2),
            // Every reuse is a reuse after sitting idle.
            check_after_idle: Duration::ZERO,
            certificates: None,
            backend: "test".into(),
            redactor: Redactor::default(),
        }
    }

    fn node(server: &RedisServer, check: Check) -> Node {
        let options = NodeOptions {
            check,
            force_tls: false,
            label: None,
        };
        Node::new(&parse_url(&server.url(0)).unwrap(), &settings(), options).unwrap()
    }

    /// A master demoted while connections to it stay open: a `ROLE` check refuses to
    /// reuse them (and to open new ones), where a `PING` check would go on reading from
    /// a replica.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_demoted_master_fails_the_role_check_on_reuse() {
        if !support::require_redis() {
            return;
        }
        let server = RedisServer::start(ServerOptions::default());
        let master = node(&server, Check::Master);
        let answers = node(&server, Check::Answers);
        for n in [&master, &answers] {
            n.open(&[]).await.unwrap();
            let set = redis::cmd("SET").arg("k").arg("v").clone();
            assert_eq!(n.run("SET", vec![set]).await.unwrap(), vec![Value::Okay]);
        }
        let nowhere = support::free_port().to_string();
        assert_eq!(server.cli(&["REPLICAOF", "127.0.0.1", &nowhere]), "OK");
        let get = || vec![redis::cmd("GET").arg("k").clone()];
        let err = master.run("GET", get()).await.unwrap_err();
        assert!(err.to_string().contains(NOT_A_MASTER), "{err}");
        assert!(err.is_unavailable(), "{err}");
        let read = answers.run("GET", get()).await.unwrap();
        assert_eq!(read, vec![Value::BulkString(b"v".to_vec())]);
    }
}
