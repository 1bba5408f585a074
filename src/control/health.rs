//! Health checks of real servers, as keepalived's checkers do them: `tcp` (TCP_CHECK),
//! `http` (HTTP_GET) and `exec` (MISC_CHECK), with interval, timeout, rise, fall and
//! warmup.
//!
//! Each checked real server gets one task on the control plane's tokio runtime (the
//! current-thread runtime the daemon, VRRP and rtnetlink already run on), so 1,000 servers
//! at 1 s intervals cost 1,000 small tasks and timers, not 1,000 threads. Probes go to the
//! real server's own address. A probe's outcome feeds a pure rise/fall state machine
//! ([`RiseFall`]); a transition sends [`ControlEvent::Health`] to the daemon (which logs it
//! and publishes a new snapshot at once), runs the server's `notify_up`/`notify_down`
//! command without waiting for it, and bumps the server's [`CheckStats`].
//!
//! Guarantees:
//! - Initial state is UP, as in keepalived: a server leaves the pool only after `fall`
//!   consecutive failed probes. A server without a check is always up.
//! - A probe never outlives its `timeout`: tcp and http are cancelled, an `exec` command's
//!   whole process group is killed (SIGKILL) and reaped.
//! - The HTTP client reads at most [`MAX_RESPONSE`] bytes; no response, however hostile,
//!   makes it panic or allocate more.
//! - [`HealthSet`] aborts its tasks when dropped; [`HealthSet::update`] restarts only the
//!   checks whose configuration changed, starting them from the server's current state.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::config::{format_duration, Check, CheckKind, Config, RealServer, VirtualServer};
use crate::control::publish::{BackendKey, Registry};
use crate::daemon::ControlEvent;
use crate::lb::tables::BackendId;

/// Most bytes of an HTTP response (headers and body) a check reads.
pub const MAX_RESPONSE: usize = 1 << 20;

/// Why one probe failed. The text is what the transition log line and notify commands see.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// TCP RST to the SYN.
    #[error("connection refused")]
    Refused,
    /// No answer within the check's timeout.
    #[error("timed out after {}", format_duration(*.0))]
    Timeout(Duration),
    /// Another socket error ("no route to host", "connection reset by peer", ...).
    #[error("{0}")]
    Io(String),
    /// The answer is not an HTTP response.
    #[error("malformed HTTP response: {0}")]
    BadResponse(&'static str),
    /// An HTTP status not in the expected list.
    #[error("HTTP {0}")]
    Status(u16),
    /// The body lacks the expected substring.
    #[error("HTTP {status}, body does not contain {needle:?}")]
    BodyMismatch {
        /// Status of the response.
        status: u16,
        /// Expected substring.
        needle: String,
    },
    /// The body's MD5 differs.
    #[error("HTTP {status}, body digest {got}, expected {want}")]
    Digest {
        /// Status of the response.
        status: u16,
        /// MD5 of the body received.
        got: String,
        /// Configured MD5.
        want: String,
    },
    /// The command exited non-zero.
    #[error("exit status {0}")]
    Exit(i32),
    /// The command was killed by a signal.
    #[error("killed by signal {0}")]
    Signal(i32),
    /// The command could not be started.
    #[error("cannot run the command: {0}")]
    Spawn(String),
}

/// An io::Error as a short lowercase reason, without the "(os error N)" suffix.
fn io_error(e: &std::io::Error) -> ProbeError {
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        return ProbeError::Refused;
    }
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut chars = text.chars();
    let lower = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    ProbeError::Io(lower)
}

// ---------------------------------------------------------------- rise/fall

/// A state change decided by [`RiseFall`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// New state.
    pub up: bool,
    /// Why: `HTTP 503, 3/3 failures` or `2/2 successes`.
    pub reason: String,
}

/// Counts consecutive probe results: an UP server goes DOWN after `fall` consecutive
/// failures, a DOWN server goes UP after `rise` consecutive successes. A result that
/// agrees with the current state resets the opposite count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    up: bool,
    run: u32,
}

impl RiseFall {
    /// A machine starting in state `up` (`rise` and `fall` below 1 count as 1).
    pub fn new(rise: u32, fall: u32, up: bool) -> Self {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            up,
            run: 0,
        }
    }

    /// Current state.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Feeds one probe result; returns the transition it causes, if any.
    pub fn record(&mut self, result: &Result<(), ProbeError>) -> Option<Transition> {
        match (self.up, result) {
            (true, Ok(())) | (false, Err(_)) => {
                self.run = 0;
                None
            }
            (true, Err(e)) => {
                self.run += 1;
                (self.run >= self.fall).then(|| {
                    self.up = false;
                    self.run = 0;
                    Transition {
                        up: false,
                        reason: format!("{e}, {n}/{n} failures", n = self.fall),
                    }
                })
            }
            (false, Ok(())) => {
                self.run += 1;
                (self.run >= self.rise).then(|| {
                    self.up = true;
                    self.run = 0;
                    Transition {
                        up: true,
                        reason: format!("{n}/{n} successes", n = self.rise),
                    }
                })
            }
        }
    }
}

// ---------------------------------------------------------------- counters

/// Per-server check counters, for the metrics endpoint. Written by the server's check
/// task only.
#[derive(Debug)]
pub struct CheckStats {
    /// Virtual service name.
    pub service: String,
    /// Real server address.
    pub addr: IpAddr,
    /// `tcp`, `http` or `exec`.
    pub kind: &'static str,
    /// Probes run.
    pub checks: AtomicU64,
    /// Probes that failed.
    pub failures: AtomicU64,
    /// UP/DOWN transitions.
    pub transitions: AtomicU64,
    /// Duration of the last probe in microseconds.
    pub last_latency_us: AtomicU64,
    /// State the check last decided.
    pub up: AtomicBool,
}

/// A plain copy of [`CheckStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckStatsSnapshot {
    /// Virtual service name.
    pub service: String,
    /// Real server address.
    pub addr: IpAddr,
    /// `tcp`, `http` or `exec`.
    pub kind: &'static str,
    /// Probes run.
    pub checks: u64,
    /// Probes that failed.
    pub failures: u64,
    /// UP/DOWN transitions.
    pub transitions: u64,
    /// Duration of the last probe in microseconds.
    pub last_latency_us: u64,
    /// State the check last decided.
    pub up: bool,
}

impl CheckStats {
    fn new(spec: &Spec, up: bool) -> Self {
        CheckStats {
            service: spec.service.clone(),
            addr: spec.addr,
            kind: kind_name(&spec.check.kind),
            checks: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
            last_latency_us: AtomicU64::new(0),
            up: AtomicBool::new(up),
        }
    }

    /// A plain copy.
    pub fn snapshot(&self) -> CheckStatsSnapshot {
        CheckStatsSnapshot {
            service: self.service.clone(),
            addr: self.addr,
            kind: self.kind,
            checks: self.checks.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            transitions: self.transitions.load(Ordering::Relaxed),
            last_latency_us: self.last_latency_us.load(Ordering::Relaxed),
            up: self.up.load(Ordering::Relaxed),
        }
    }
}

fn kind_name(k: &CheckKind) -> &'static str {
    match k {
        CheckKind::Tcp => "tcp",
        CheckKind::Http { .. } => "http",
        CheckKind::Exec { .. } => "exec",
    }
}

/// Shared view of every running check's counters, keyed by backend id. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct HealthHandle {
    inner: Arc<Mutex<BTreeMap<BackendId, Arc<CheckStats>>>>,
}

impl HealthHandle {
    /// Counters of one backend's check.
    pub fn get(&self, id: BackendId) -> Option<Arc<CheckStats>> {
        self.lock().get(&id).cloned()
    }

    /// Counters of every running check, by backend id.
    pub fn snapshot(&self) -> Vec<(BackendId, CheckStatsSnapshot)> {
        self.lock()
            .iter()
            .map(|(id, s)| (*id, s.snapshot()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<BackendId, Arc<CheckStats>>> {
        // Nothing panics while holding the lock; recover the map if something ever did.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ---------------------------------------------------------------- probes

/// Everything a check task needs about its server, compared on reload.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    id: BackendId,
    service: String,
    vip: IpAddr,
    addr: IpAddr,
    check: Check,
    notify_up: Option<String>,
    notify_down: Option<String>,
}

impl Spec {
    fn target(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.check.port)
    }
}

/// The request an `http` check sends: HTTP/1.0, so the server closes after answering.
pub fn http_request(path: &str, host: Option<&str>, addr: IpAddr, port: u16) -> Vec<u8> {
    let host = match host {
        Some(h) => h.to_string(),
        None => {
            let a = match addr {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            if port == 80 {
                a
            } else {
                format!("{a}:{port}")
            }
        }
    };
    format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: xlb-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// Where the header of an HTTP response ends (index of the body's first byte).
fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Content-Length of a header block, if present and valid.
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            value.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Judges a (possibly truncated) HTTP response against the check's expectations.
pub fn judge_http(
    response: &[u8],
    status: &[u16],
    body_contains: Option<&str>,
    digest: Option<&str>,
) -> Result<(), ProbeError> {
    let end = header_end(response).ok_or(ProbeError::BadResponse("no end of header"))?;
    let line_end = response
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(end.saturating_sub(4));
    let line = std::str::from_utf8(&response[..line_end])
        .map_err(|_| ProbeError::BadResponse("status line is not text"))?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(ProbeError::BadResponse("no HTTP version"));
    }
    let code: u16 = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse().ok())
        .ok_or(ProbeError::BadResponse("bad status code"))?;
    if !status.contains(&code) {
        return Err(ProbeError::Status(code));
    }
    let mut body = &response[end..];
    if let Some(n) = content_length(&response[..end]) {
        body = &body[..n.min(body.len())];
    }
    if let Some(needle) = body_contains {
        let found = needle.is_empty() || body.windows(needle.len()).any(|w| w == needle.as_bytes());
        if !found {
            return Err(ProbeError::BodyMismatch {
                status: code,
                needle: needle.to_string(),
            });
        }
    }
    if let Some(want) = digest {
        let got = md5_hex(body);
        if !got.eq_ignore_ascii_case(want) {
            return Err(ProbeError::Digest {
                status: code,
                got,
                want: want.to_string(),
            });
        }
    }
    Ok(())
}

/// MD5 of `data` as 32 lowercase hex digits.
pub fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Connects, sends `request`, reads the response (at most [`MAX_RESPONSE`] bytes, until
/// EOF or Content-Length is satisfied). No timeout: the caller bounds it.
async fn http_fetch(target: SocketAddr, request: &[u8]) -> Result<Vec<u8>, ProbeError> {
    let mut s = TcpStream::connect(target).await.map_err(|e| io_error(&e))?;
    s.write_all(request).await.map_err(|e| io_error(&e))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    loop {
        let room = MAX_RESPONSE - buf.len();
        if room == 0 {
            break;
        }
        let n = s
            .read(&mut chunk[..room.min(8192)])
            .await
            .map_err(|e| io_error(&e))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = header_end(&buf) {
            if let Some(len) = content_length(&buf[..end]) {
                if buf.len() >= end.saturating_add(len) {
                    break;
                }
            }
        }
    }
    if buf.is_empty() {
        return Err(ProbeError::BadResponse(
            "connection closed without a response",
        ));
    }
    Ok(buf)
}

/// Runs `sh -c command` in its own process group with the given environment; exit 0 is
/// success. On timeout the whole group is killed and reaped.
pub async fn exec_probe(
    command: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<(), ProbeError> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| ProbeError::Spawn(e.to_string()))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(st)) => {
            use std::os::unix::process::ExitStatusExt;
            if st.success() {
                Ok(())
            } else if let Some(sig) = st.signal() {
                Err(ProbeError::Signal(sig))
            } else {
                Err(ProbeError::Exit(st.code().unwrap_or(-1)))
            }
        }
        Ok(Err(e)) => Err(io_error(&e)),
        Err(_) => {
            if let Some(pid) = pid {
                // SAFETY: kill(2) with a negative pid signals the process group the child
                // leads (process_group(0) above); it has no memory-safety preconditions.
                unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
            }
            let _ = child.kill().await;
            Err(ProbeError::Timeout(timeout))
        }
    }
}

/// Environment of an `exec` check (keepalived's MISC_CHECK gets the same facts as
/// arguments).
fn exec_env(spec: &Spec) -> Vec<(&'static str, String)> {
    vec![
        ("XLB_SERVICE", spec.service.clone()),
        ("XLB_VIP", spec.vip.to_string()),
        ("XLB_REAL_SERVER", spec.addr.to_string()),
        ("XLB_PORT", spec.check.port.to_string()),
        ("XLB_TIMEOUT_MS", spec.check.timeout.as_millis().to_string()),
    ]
}

/// One probe of `spec`'s server, bounded by its timeout.
async fn probe(spec: &Spec, http_req: &[u8]) -> Result<(), ProbeError> {
    let timeout = spec.check.timeout;
    match &spec.check.kind {
        CheckKind::Tcp => {
            match tokio::time::timeout(timeout, TcpStream::connect(spec.target())).await {
                Ok(Ok(_stream)) => Ok(()),
                Ok(Err(e)) => Err(io_error(&e)),
                Err(_) => Err(ProbeError::Timeout(timeout)),
            }
        }
        CheckKind::Http {
            status,
            body_contains,
            digest,
            ..
        } => match tokio::time::timeout(timeout, http_fetch(spec.target(), http_req)).await {
            Ok(Ok(resp)) => judge_http(&resp, status, body_contains.as_deref(), digest.as_deref()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ProbeError::Timeout(timeout)),
        },
        CheckKind::Exec { command } => exec_probe(command, &exec_env(spec), timeout).await,
    }
}

/// Runs a notify command (`sh -c`) without waiting for it; a task reaps it and logs a
/// failure.
fn run_notify(spec: &Spec, up: bool, reason: &str) {
    let Some(cmd) = (if up {
        &spec.notify_up
    } else {
        &spec.notify_down
    }) else {
        return;
    };
    let state = if up { "UP" } else { "DOWN" };
    let child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("XLB_SERVICE", &spec.service)
        .env("XLB_VIP", spec.vip.to_string())
        .env("XLB_REAL_SERVER", spec.addr.to_string())
        .env("XLB_PORT", spec.check.port.to_string())
        .env("XLB_STATE", state)
        .env("XLB_REASON", reason)
        .stdin(std::process::Stdio::null())
        .spawn();
    let (svc, addr) = (spec.service.clone(), spec.addr);
    match child {
        Ok(mut child) => {
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(st) if st.success() => {}
                    Ok(st) => warn!(
                        "{svc} {addr}: notify_{} command failed: {st}",
                        state.to_lowercase()
                    ),
                    Err(e) => warn!("{svc} {addr}: waiting for the notify command: {e}"),
                }
            });
        }
        Err(e) => warn!("{svc} {addr}: notify command did not start: {e}"),
    }
}

/// The life of one check: warmup, then a probe every interval until aborted.
async fn run_check(spec: Arc<Spec>, up: bool, stats: Arc<CheckStats>, tx: Sender<ControlEvent>) {
    let http_req = match &spec.check.kind {
        CheckKind::Http { path, host, .. } => {
            http_request(path, host.as_deref(), spec.addr, spec.check.port)
        }
        _ => Vec::new(),
    };
    tokio::time::sleep(spec.check.warmup).await;
    let mut machine = RiseFall::new(spec.check.rise, spec.check.fall, up);
    let mut tick = tokio::time::interval(spec.check.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let result = probe(&spec, &http_req).await;
        let took = started.elapsed();
        stats.checks.fetch_add(1, Ordering::Relaxed);
        stats
            .last_latency_us
            .store(took.as_micros() as u64, Ordering::Relaxed);
        if result.is_err() {
            stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(t) = machine.record(&result) {
            stats.transitions.fetch_add(1, Ordering::Relaxed);
            stats.up.store(t.up, Ordering::Relaxed);
            run_notify(&spec, t.up, &t.reason);
            let ev = ControlEvent::Health {
                id: spec.id,
                up: t.up,
                reason: t.reason,
            };
            if tx.send(ev).await.is_err() {
                return; // the daemon is gone
            }
        }
    }
}

// ---------------------------------------------------------------- the set of checks

struct Running {
    spec: Arc<Spec>,
    task: JoinHandle<()>,
}

/// Every running check; dropping it aborts them.
pub struct HealthSet {
    running: HashMap<BackendId, Running>,
    handle: HealthHandle,
    tx: Sender<ControlEvent>,
}

fn specs(cfg: &Config, reg: &Registry) -> (HashMap<BackendId, Spec>, Vec<BackendId>) {
    let mut checked = HashMap::new();
    let mut unchecked = Vec::new();
    for vs in &cfg.virtual_servers {
        for rs in &vs.real_servers {
            let Some(id) = reg.get(&BackendKey {
                service: vs.name.clone(),
                addr: rs.address,
                sorry: false,
            }) else {
                warn!("{} {}: no backend id; not checked", vs.name, rs.address);
                continue;
            };
            match spec_of(vs, rs, id) {
                Some(s) => {
                    checked.insert(id, s);
                }
                None => unchecked.push(id),
            }
        }
    }
    (checked, unchecked)
}

fn spec_of(vs: &VirtualServer, rs: &RealServer, id: BackendId) -> Option<Spec> {
    Some(Spec {
        id,
        service: vs.name.clone(),
        vip: vs.vip,
        addr: rs.address,
        check: rs.check.clone()?,
        notify_up: rs.notify_up.clone(),
        notify_down: rs.notify_down.clone(),
    })
}

/// Starts a check task for every real server of `cfg` that has one; each starts from the
/// server's state in `reg`. Must be called inside a tokio runtime.
pub fn spawn_all(cfg: &Config, reg: &Registry, tx: Sender<ControlEvent>) -> HealthSet {
    let mut set = HealthSet {
        running: HashMap::new(),
        handle: HealthHandle::default(),
        tx,
    };
    set.update(cfg, reg);
    set
}

impl HealthSet {
    /// The counters of every running check.
    pub fn handle(&self) -> HealthHandle {
        self.handle.clone()
    }

    /// Number of running checks.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// True when no check runs.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Brings the running checks in line with `cfg` (after a reload): stops checks of
    /// servers that are gone or lost their check, restarts those whose check, notify
    /// commands or VIP changed (from the server's current state in `reg`), leaves the
    /// others alone. A server that lost its check while DOWN is reported UP.
    pub fn update(&mut self, cfg: &Config, reg: &Registry) {
        let (mut wanted, unchecked) = specs(cfg, reg);
        let mut map = self.handle.lock();
        self.running.retain(|id, r| {
            let keep = wanted.get(id) == Some(&*r.spec);
            if keep {
                wanted.remove(id);
            } else {
                r.task.abort();
                map.remove(id);
            }
            keep
        });
        for (id, spec) in wanted {
            let up = reg.status(id).is_none_or(|s| s.healthy);
            let spec = Arc::new(spec);
            let stats = Arc::new(CheckStats::new(&spec, up));
            map.insert(id, Arc::clone(&stats));
            let task = tokio::spawn(run_check(Arc::clone(&spec), up, stats, self.tx.clone()));
            self.running.insert(id, Running { spec, task });
        }
        drop(map);
        for id in unchecked {
            if reg.status(id).is_some_and(|s| !s.healthy) {
                let ev = ControlEvent::Health {
                    id,
                    up: true,
                    reason: "no health check configured".into(),
                };
                if self.tx.try_send(ev).is_err() {
                    warn!("backend {id}: could not report it up after its check was removed");
                }
            }
        }
    }
}

impl Drop for HealthSet {
    fn drop(&mut self) {
        for r in self.running.values() {
            r.task.abort();
        }
    }
}

// ---------------------------------------------------------------- all-down detection

/// Whether the service of backend `id` has a real server that takes new flows (healthy
/// and weight > 0). `None` when `id` is not a real server of `cfg`.
pub fn serving(cfg: &Config, reg: &Registry, id: BackendId) -> Option<bool> {
    let key = reg.key(id)?;
    let vs = cfg.virtual_servers.iter().find(|v| v.name == key.service)?;
    Some(service_serving(vs, reg))
}

/// Whether `vs` has a real server that can take new flows (healthy, weight > 0).
pub fn service_serving(vs: &VirtualServer, reg: &Registry) -> bool {
    vs.real_servers.iter().any(|rs| {
        rs.weight > 0
            && reg
                .get(&BackendKey {
                    service: vs.name.clone(),
                    addr: rs.address,
                    sorry: false,
                })
                .and_then(|i| reg.status(i))
                .is_some_and(|s| s.healthy)
    })
}

/// Logs (once per transition) that the service of backend `id` lost its last usable real
/// server (ERROR) or got one back (INFO). `before` is [`serving`] before the change.
pub fn log_serving_change(cfg: &Config, reg: &Registry, id: BackendId, before: Option<bool>) {
    let Some(vs) = reg
        .key(id)
        .and_then(|k| cfg.virtual_servers.iter().find(|v| v.name == k.service))
    else {
        return;
    };
    if let Some(before) = before {
        log_service_serving(vs, Some(before), service_serving(vs, reg));
    }
}

/// Logs a change of [`service_serving`] for `vs`: ERROR when it lost its last usable real
/// server (or is new without one: `before` is `None`), INFO when it got one back.
pub fn log_service_serving(vs: &VirtualServer, before: Option<bool>, now: bool) {
    if before == Some(now) || (before.is_none() && now) {
        return;
    }
    if now {
        info!(
            "{}: a real server is up again; new flows go to real servers",
            vs.name
        );
    } else {
        match vs.sorry_server {
            Some(s) => error!(
                "{}: no real server is up; new flows go to the sorry server {s}",
                vs.name
            ),
            None => error!("{}: no real server is up; new flows are dropped", vs.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Result<(), ProbeError> {
        Err(ProbeError::Status(503))
    }

    #[test]
    fn rise_fall_goes_down_after_fall_consecutive_failures() {
        let mut m = RiseFall::new(2, 3, true);
        assert_eq!(m.record(&fail()), None);
        assert_eq!(m.record(&fail()), None);
        let t = m.record(&fail()).expect("third failure");
        assert_eq!(
            t,
            Transition {
                up: false,
                reason: "HTTP 503, 3/3 failures".into()
            }
        );
        assert!(!m.is_up());
        // More failures change nothing.
        assert_eq!(m.record(&Err(ProbeError::Refused)), None);
    }

    #[test]
    fn rise_fall_success_resets_the_failure_run() {
        let mut m = RiseFall::new(2, 3, true);
        for _ in 0..10 {
            assert_eq!(m.record(&fail()), None);
            assert_eq!(m.record(&fail()), None);
            assert_eq!(m.record(&Ok(())), None);
        }
        assert!(m.is_up());
    }

    #[test]
    fn rise_fall_comes_back_after_rise_successes_and_failure_resets() {
        let mut m = RiseFall::new(2, 1, false);
        assert_eq!(m.record(&Ok(())), None);
        assert_eq!(m.record(&Err(ProbeError::Refused)), None);
        assert_eq!(m.record(&Ok(())), None);
        let t = m.record(&Ok(())).expect("second success in a row");
        assert_eq!(t.reason, "2/2 successes");
        assert!(t.up && m.is_up());
        let t = m.record(&Err(ProbeError::Refused)).expect("fall 1");
        assert_eq!(t.reason, "connection refused, 1/1 failures");
    }

    #[test]
    fn rise_fall_zero_counts_as_one() {
        let mut m = RiseFall::new(0, 0, true);
        assert!(m.record(&fail()).is_some());
        assert!(m.record(&Ok(())).is_some());
    }

    #[test]
    fn timeout_reason_uses_config_duration_format() {
        let e = ProbeError::Timeout(Duration::from_millis(150));
        assert_eq!(e.to_string(), "timed out after 150ms");
        let io = std::io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(io_error(&io).to_string(), "no route to host");
        let io = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(io_error(&io), ProbeError::Refused);
    }

    #[test]
    fn http_request_host_header_defaults_to_the_address() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let r = String::from_utf8(http_request("/h", None, v4, 80)).unwrap();
        assert!(
            r.starts_with("GET /h HTTP/1.0\r\nHost: 10.0.0.1\r\n"),
            "{r}"
        );
        assert!(r.ends_with("\r\n\r\n"));
        let r = String::from_utf8(http_request("/", None, v6, 8080)).unwrap();
        assert!(r.contains("\r\nHost: [fd00::1]:8080\r\n"), "{r}");
        let r = String::from_utf8(http_request("/", Some("www.example"), v6, 8080)).unwrap();
        assert!(r.contains("\r\nHost: www.example\r\n"), "{r}");
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX: y\r\n\r\nr1\nGARBAGE";

    #[test]
    fn judge_http_status_body_and_digest() {
        assert_eq!(judge_http(OK, &[200], None, None), Ok(()));
        assert_eq!(
            judge_http(OK, &[204, 301], None, None),
            Err(ProbeError::Status(200))
        );
        assert_eq!(judge_http(OK, &[200], Some("r1"), None), Ok(()));
        // Content-Length bounds the body: bytes after it are not part of it.
        let e = judge_http(OK, &[200], Some("GARBAGE"), None).unwrap_err();
        assert_eq!(e.to_string(), "HTTP 200, body does not contain \"GARBAGE\"");
        // md5("r1\n"), computed independently with md5sum.
        let d = "35a853e2b2b105502215358d4d3db9f7";
        assert_eq!(md5_hex(b"r1\n"), d);
        assert_eq!(judge_http(OK, &[200], Some("r"), Some(d)), Ok(()));
        assert_eq!(
            judge_http(OK, &[200], None, Some(&d.to_uppercase())),
            Ok(())
        );
        let e = judge_http(OK, &[200], None, Some(&"0".repeat(32))).unwrap_err();
        assert!(matches!(e, ProbeError::Digest { status: 200, .. }), "{e}");
        // md5 of the empty string (RFC 1321 test suite).
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let no_len = b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy";
        assert_eq!(
            judge_http(no_len, &[200], None, None),
            Err(ProbeError::Status(503))
        );
        assert_eq!(judge_http(no_len, &[503], Some("busy"), None), Ok(()));
    }

    #[test]
    fn judge_http_rejects_garbage_without_panicking() {
        let cases: [&[u8]; 7] = [
            b"",
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nx",
            b"\xff\xfe\r\n\r\n",
        ];
        for c in cases {
            let r = judge_http(c, &[200], Some("x"), None);
            // The huge Content-Length is ignored (not a usize): the body "x" matches.
            if c.starts_with(b"HTTP/1.1 200 OK\r\nContent-Length: 999") {
                assert_eq!(r, Ok(()));
            } else {
                assert!(matches!(r, Err(ProbeError::BadResponse(_))), "{c:?}: {r:?}");
            }
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn spec(kind: CheckKind, port: u16) -> Spec {
        Spec {
            id: 0,
            service: "web".into(),
            vip: "10.0.0.100".parse().unwrap(),
            addr: "127.0.0.1".parse().unwrap(),
            check: Check {
                kind,
                port,
                interval: Duration::from_millis(100),
                timeout: Duration::from_millis(300),
                rise: 1,
                fall: 1,
                warmup: Duration::ZERO,
            },
            notify_up: None,
            notify_down: None,
        }
    }

    fn http(status: Vec<u16>, body_contains: Option<&str>) -> CheckKind {
        CheckKind::Http {
            path: "/health".into(),
            host: Some("svc.test".into()),
            status,
            body_contains: body_contains.map(str::to_string),
            digest: None,
        }
    }

    /// A one-shot HTTP server on loopback answering `reply`; returns its port and the
    /// request it received.
    async fn serve_once(reply: &'static [u8]) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while header_end(&req).is_none() {
                let n = s.read(&mut b).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&b[..n]);
            }
            s.write_all(reply).await.unwrap();
            req
        });
        (port, h)
    }

    #[test]
    fn tcp_probe_on_loopback() {
        rt().block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            assert_eq!(probe(&spec(CheckKind::Tcp, port), &[]).await, Ok(()));
            drop(l);
            assert_eq!(
                probe(&spec(CheckKind::Tcp, port), &[]).await,
                Err(ProbeError::Refused)
            );
        });
    }

    #[test]
    fn http_probe_on_loopback() {
        rt().block_on(async {
            let (port, h) =
                serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello\n").await;
            let s = spec(http(vec![200], Some("hello")), port);
            let req = http_request("/health", Some("svc.test"), s.addr, port);
            assert_eq!(probe(&s, &req).await, Ok(()));
            let got = String::from_utf8(h.await.unwrap()).unwrap();
            assert!(
                got.starts_with("GET /health HTTP/1.0\r\nHost: svc.test\r\n"),
                "{got}"
            );

            let (port, _h) = serve_once(b"HTTP/1.0 503 Busy\r\n\r\n").await;
            let s = spec(http(vec![200], None), port);
            assert_eq!(probe(&s, &req).await, Err(ProbeError::Status(503)));

            // A server that accepts and never answers: the timeout covers the response.
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            let s = spec(http(vec![200], None), port);
            let t0 = Instant::now();
            assert_eq!(
                probe(&s, &req).await,
                Err(ProbeError::Timeout(Duration::from_millis(300)))
            );
            assert!(t0.elapsed() < Duration::from_secs(2));
        });
    }

    #[test]
    fn exec_probe_exit_status_env_and_timeout_kills_the_group() {
        rt().block_on(async {
            let ok = CheckKind::Exec {
                command: "[ \"$XLB_SERVICE $XLB_REAL_SERVER $XLB_PORT $XLB_VIP\" = \"web 127.0.0.1 80 10.0.0.100\" ]"
                    .into(),
            };
            assert_eq!(probe(&spec(ok, 80), &[]).await, Ok(()));
            let three = CheckKind::Exec {
                command: "exit 3".into(),
            };
            assert_eq!(probe(&spec(three, 80), &[]).await, Err(ProbeError::Exit(3)));
            // The grandchild `sleep` must die with the group: its pid file's process is gone.
            let dir = std::env::temp_dir().join(format!("xlb-health-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let pidf = dir.join("pid");
            let slow = CheckKind::Exec {
                command: format!("sleep 30 & echo $! > {}; wait", pidf.display()),
            };
            let t0 = Instant::now();
            assert_eq!(
                probe(&spec(slow, 80), &[]).await,
                Err(ProbeError::Timeout(Duration::from_millis(300)))
            );
            assert!(t0.elapsed() < Duration::from_secs(5));
            let pid: i32 = std::fs::read_to_string(&pidf)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            // Give the kernel a moment to deliver SIGKILL, then the process must be gone
            // (or a zombie awaiting its reaper, init).
            let mut gone = false;
            for _ in 0..100 {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                if stat.is_empty() || stat.contains(") Z") {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = std::fs::remove_dir_all(&dir);
            assert!(gone, "sleep {pid} survived the timeout");
        });
    }
    fn config(yaml_servers: &str) -> Config {
        let yaml = format!(
            "interface: eth0\nworkers: {{ queues: [0], cores: [0] }}\nvirtual_servers:\n  - name: web\n    vip: 127.0.0.100\n    ports: [80]\n    sorry_server: 127.0.0.200\n    real_servers:\n{yaml_servers}"
        );
        Config::from_yaml(&yaml, &crate::config::StaticEnvironment::new(1))
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<ControlEvent>) -> (BackendId, bool, String) {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(ControlEvent::Health { id, up, reason })) => (id, up, reason),
            other => panic!("no health event: {other:?}"),
        }
    }

    #[test]
    fn health_set_reports_transitions_runs_notify_and_counts() {
        rt().block_on(async {
            // A port that is closed now and opened later.
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            drop(l);
            let dir = std::env::temp_dir().join(format!("xlb-health-set-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let notes = dir.join("notify");
            let servers = format!(
                "      - address: 127.0.0.11\n        notify_up: 'echo \"$XLB_STATE $XLB_SERVICE $XLB_VIP $XLB_REAL_SERVER\" >> {n}'\n        notify_down: 'echo \"$XLB_STATE $XLB_REASON\" >> {n}'\n        check: {{ type: tcp, port: {port}, interval: 50ms, timeout: 40ms, rise: 2, fall: 2 }}\n      - address: 127.0.0.12\n",
                n = notes.display()
            );
            let cfg = config(&servers);
            let mut reg = Registry::default();
            reg.sync(&cfg);
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let set = spawn_all(&cfg, &reg, tx);
            assert_eq!(set.len(), 1, "the server without a check has no task");
            let id = reg
                .get(&BackendKey { service: "web".into(), addr: "127.0.0.11".parse().unwrap(), sorry: false })
                .unwrap();
            assert_eq!(serving(&cfg, &reg, id), Some(true));

            let (got, up, reason) = next(&mut rx).await;
            assert_eq!((got, up, reason.as_str()), (id, false, "connection refused, 2/2 failures"));
            reg.status_mut(id).unwrap().healthy = false;
            // 127.0.0.12 has no check and stays up: the service still serves.
            assert_eq!(serving(&cfg, &reg, id), Some(true));

            let l = tokio::net::TcpListener::bind(("127.0.0.11", port)).await.unwrap();
            let (got, up, reason) = next(&mut rx).await;
            assert_eq!((got, up, reason.as_str()), (id, true, "2/2 successes"));
            let stats = set.handle().get(id).unwrap().snapshot();
            assert_eq!(stats.kind, "tcp");
            assert!(stats.up);
            assert_eq!(stats.transitions, 2);
            assert!(stats.checks >= 4 && stats.failures >= 2, "{stats:?}");
            assert_eq!(set.handle().snapshot().len(), 1);

            // Notify commands ran (asynchronously) with the documented environment.
            let want = "DOWN connection refused, 2/2 failures\nUP web 127.0.0.100 127.0.0.11\n";
            let mut text = String::new();
            for _ in 0..200 {
                text = std::fs::read_to_string(&notes).unwrap_or_default();
                if text == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(text, want);

            // Dropping the set stops the checks: no more events, the sender is gone.
            drop(set);
            drop(l);
            match tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
                Ok(None) => {}
                other => panic!("a check outlived its set: {other:?}"),
            }
            let _ = std::fs::remove_dir_all(&dir);
        });
    }

    #[test]
    fn update_restarts_only_changed_checks_and_reports_unchecked_servers_up() {
        rt().block_on(async {
            let check = |port: u16| format!("        check: {{ type: tcp, port: {port}, interval: 1s, timeout: 100ms, warmup: 1h }}\n");
            let a = format!("      - address: 127.0.0.11\n{}      - address: 127.0.0.12\n{}", check(1), check(2));
            let cfg = config(&a);
            let mut reg = Registry::default();
            reg.sync(&cfg);
            let (tx, mut rx) = tokio::sync::mpsc::channel(16);
            let mut set = spawn_all(&cfg, &reg, tx);
            assert_eq!(set.len(), 2);
            let id = |reg: &Registry, a: &str| reg.get(&BackendKey { service: "web".into(), addr: a.parse().unwrap(), sorry: false }).unwrap();
            let (i11, i12) = (id(&reg, "127.0.0.11"), id(&reg, "127.0.0.12"));
            let s11 = set.handle().get(i11).unwrap();
            let s12 = set.handle().get(i12).unwrap();

            // Same config: nothing restarts (the stats objects stay the same).
            set.update(&cfg, &reg);
            assert!(Arc::ptr_eq(&s11, &set.handle().get(i11).unwrap()));

            // .12 changes its port, .11 loses its check while DOWN, .13 is new.
            reg.status_mut(i11).unwrap().healthy = false;
            let b = format!("      - address: 127.0.0.11\n      - address: 127.0.0.12\n{}      - address: 127.0.0.13\n{}", check(3), check(4));
            let cfg2 = config(&b);
            reg.sync(&cfg2);
            set.update(&cfg2, &reg);
            assert_eq!(set.len(), 2);
            assert!(set.handle().get(i11).is_none());
            assert!(!Arc::ptr_eq(&s12, &set.handle().get(i12).unwrap()));
            assert!(set.handle().get(id(&reg, "127.0.0.13")).is_some());
            let (got, up, reason) = next(&mut rx).await;
            assert_eq!((got, up, reason.as_str()), (i11, true, "no health check configured"));
        });
    }

    #[test]
    fn serving_and_all_down_logging_follow_health_and_weight() {
        let cfg =
            config("      - address: 127.0.0.11\n      - address: 127.0.0.12\n        weight: 0\n");
        let mut reg = Registry::default();
        reg.sync(&cfg);
        let k = |a: &str| {
            reg.get(&BackendKey {
                service: "web".into(),
                addr: a.parse().unwrap(),
                sorry: false,
            })
            .unwrap()
        };
        let (i11, i12) = (k("127.0.0.11"), k("127.0.0.12"));
        assert_eq!(serving(&cfg, &reg, i11), Some(true));
        reg.status_mut(i11).unwrap().healthy = false;
        // The only other server has weight 0 (drain): nothing takes new flows.
        assert_eq!(serving(&cfg, &reg, i12), Some(false));
        let sorry = reg
            .get(&BackendKey {
                service: "web".into(),
                addr: "127.0.0.200".parse().unwrap(),
                sorry: true,
            })
            .unwrap();
        assert_eq!(serving(&cfg, &reg, 9999), None);
        assert_eq!(serving(&cfg, &reg, sorry), Some(false));
        // Logging must not panic on any combination.
        log_serving_change(&cfg, &reg, i11, Some(true));
        log_serving_change(&cfg, &reg, i11, None);
        log_serving_change(&cfg, &reg, 9999, Some(true));
        // The per-service form used after a reload agrees with the per-backend one.
        let vs = &cfg.virtual_servers[0];
        assert!(!service_serving(vs, &reg));
        reg.status_mut(i11).unwrap().healthy = true;
        assert!(service_serving(vs, &reg));
        for before in [None, Some(true), Some(false)] {
            log_service_serving(vs, before, false);
            log_service_serving(vs, before, true);
        }
    }
}
