//! The control socket: `xlb status` and `xlb reload` talk to the daemon over a unix
//! stream socket (`control_socket`, mode 0600).
//!
//! Protocol: the client writes one JSON request on one line (`{"command":"status"}` or
//! `{"command":"reload"}`), the daemon answers with one JSON line ([`Response`]) and
//! closes. Status is answered from the shared [`Sources`] without involving the control
//! loop; a reload is handed to the control loop (which owns the config) and answered when
//! it is done.
//!
//! Guarantees: the socket file is created with mode 0600 (umask 0177 around `bind`, then
//! `chmod`), so only its owner (and root) can read the status or trigger a reload; a stale
//! socket file of a dead daemon is replaced, a live daemon's is never stolen; requests are
//! bounded (4 KiB, 5 s) so a stuck client cannot hold the daemon; the table rendering is a
//! pure function of the [`StatusReport`].

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::reload::{ReloadReply, ReloadRequest};
use crate::metrics::{state_name, Sources};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 4096;
/// Time a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// Another daemon answers on the socket.
    #[error("control socket {0}: another xlb is running (it answers on this socket)")]
    InUse(PathBuf),
    /// Socket set-up or I/O failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The daemon's answer was not understood.
    #[error("control socket {path}: bad answer: {message}")]
    Protocol {
        /// Socket path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// A request from `xlb status` / `xlb reload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Request {
    /// Report state.
    Status,
    /// Reload the configuration file the daemon was started with.
    Reload,
}

/// The daemon's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// Answer to [`Request::Reload`].
    Reload(ReloadReply),
    /// The request could not be served.
    Error(String),
}

/// Everything `xlb status` shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// xlb version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Data plane attached.
    pub ready: bool,
    /// Snapshot generation.
    pub generation: u64,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Virtual services.
    pub services: Vec<ServiceStatus>,
    /// VRRP instances.
    pub vrrp: Vec<VrrpStatus>,
    /// Workers.
    pub workers: Vec<WorkerStatus>,
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Name.
    pub name: String,
    /// VIP.
    pub vip: IpAddr,
    /// "tcp" or "udp".
    pub protocol: String,
    /// Ports (empty: every port).
    pub ports: Vec<u16>,
    /// Owning VRRP instance.
    pub vrrp: Option<String>,
    /// This director serves it now.
    pub active: bool,
    /// Real servers able to take new flows.
    pub healthy_real_servers: usize,
    /// Sums over the real servers below.
    pub new_flows: u64,
    /// Sum of active flows.
    pub active_flows: u64,
    /// Sum of packets.
    pub packets: u64,
    /// Sum of bytes.
    pub bytes: u64,
    /// Real servers (and the sorry server, flagged).
    pub real_servers: Vec<RealServerStatus>,
}

/// One real server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RealServerStatus {
    /// Address.
    pub address: IpAddr,
    /// Configured weight.
    pub weight: u32,
    /// "up", "drain" or "down" (data-plane state).
    pub state: String,
    /// Health checks pass.
    pub healthy: bool,
    /// MAC known.
    pub mac_resolved: bool,
    /// The sorry server.
    pub sorry: bool,
    /// Flows pinned to it.
    pub active_flows: u64,
    /// Flows scheduled to it since start.
    pub new_flows: u64,
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Last health probe's duration, milliseconds.
    pub check_ms: Option<f64>,
}

/// One VRRP instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VrrpStatus {
    /// Name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Priority.
    pub priority: u8,
    /// INIT, BACKUP, MASTER or FAULT.
    pub state: String,
    /// Transitions since the instance started.
    pub transitions: u64,
}

/// One worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// Rx queue.
    pub queue: u32,
    /// Frames received.
    pub rx_packets: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Flow-table entries.
    pub flows: u64,
}

/// Builds the report from what the daemon shares.
pub fn report(sources: &Sources) -> StatusReport {
    let view = sources.view();
    let services = view
        .services
        .iter()
        .map(|s| {
            let real_servers: Vec<RealServerStatus> = s
                .backends
                .iter()
                .map(|b| {
                    let t = sources.backend_totals(b.id);
                    RealServerStatus {
                        address: b.address,
                        weight: b.weight,
                        state: state_name(b.state).to_owned(),
                        healthy: b.healthy,
                        mac_resolved: b.mac_resolved,
                        sorry: b.sorry,
                        active_flows: t.active_flows,
                        new_flows: t.new_flows,
                        packets: t.packets,
                        bytes: t.bytes,
                        check_ms: sources
                            .check_latency(b.id)
                            .map(|d| d.as_secs_f64() * 1000.0),
                    }
                })
                .collect();
            let sum = |f: fn(&RealServerStatus) -> u64| real_servers.iter().map(f).sum();
            ServiceStatus {
                name: s.name.clone(),
                vip: s.vip,
                protocol: s.protocol.to_string(),
                ports: s.ports.clone(),
                vrrp: s.vrrp.clone(),
                active: s.active,
                healthy_real_servers: real_servers
                    .iter()
                    .filter(|r| !r.sorry && r.state == "up" && r.mac_resolved)
                    .count(),
                new_flows: sum(|r| r.new_flows),
                active_flows: sum(|r| r.active_flows),
                packets: sum(|r| r.packets),
                bytes: sum(|r| r.bytes),
                real_servers,
            }
        })
        .collect();
    let vrrp = view
        .vrrp
        .iter()
        .map(|v| VrrpStatus {
            name: v.name.clone(),
            vrid: v.vrid,
            priority: v.priority,
            state: v.state.as_str().to_owned(),
            transitions: v.counters.transitions.load(Ordering::Relaxed),
        })
        .collect();
    let workers = sources
        .workers()
        .iter()
        .map(|w| {
            let s = w.stats.snapshot();
            WorkerStatus {
                queue: w.queue,
                rx_packets: s.rx_packets,
                tx_packets: s.tx_packets,
                dropped: s.dropped,
                flows: w.counters.flows.load(Ordering::Relaxed),
            }
        })
        .collect();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds: sources.uptime().as_secs_f64(),
        ready: sources.ready(),
        generation: view.generation,
        reloads: view.reloads,
        services,
        vrrp,
        workers,
    }
}

/// "1d02h03m04s" style.
pub fn format_uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m{s:02}s")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

fn addr_port(ip: IpAddr, ports: &[u16]) -> String {
    let host = match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let ports = if ports.is_empty() {
        "*".to_owned()
    } else {
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!("{host}:{ports}")
}

/// The `ipvsadm -L -n --stats`-like table.
pub fn render_table(r: &StatusReport) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "xlb {} up {}, data plane {}, generation {}, {} reload{}",
        r.version,
        format_uptime(r.uptime_seconds),
        if r.ready { "attached" } else { "NOT attached" },
        r.generation,
        r.reloads,
        if r.reloads == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        o,
        "Prot LocalAddress:Port                 State            Weight  ActiveConn      Conns     InPkts      InBytes"
    );
    let _ = writeln!(
        o,
        "  -> RemoteAddress                                                 (DR: replies bypass the director)"
    );
    for s in &r.services {
        let who = match (&s.vrrp, s.active) {
            (_, true) => "active".to_owned(),
            (Some(v), false) => format!("standby ({v})"),
            (None, false) => "inactive".to_owned(),
        };
        let _ = writeln!(
            o,
            "{:<4} {:<32} {:<16} {:>6}  {:>10} {:>10} {:>10} {:>12}  {}",
            s.protocol.to_uppercase(),
            addr_port(s.vip, &s.ports),
            who,
            "",
            s.active_flows,
            s.new_flows,
            s.packets,
            s.bytes,
            s.name
        );
        for b in &s.real_servers {
            let mut state = b.state.to_uppercase();
            if !b.healthy {
                state.push_str(" (failed)");
            } else if !b.mac_resolved {
                state.push_str(" (no MAC)");
            }
            if b.sorry {
                state = format!("SORRY {state}");
            }
            let _ = writeln!(
                o,
                "  -> {:<31} {:<16} {:>6}  {:>10} {:>10} {:>10} {:>12}",
                b.address.to_string(),
                state,
                b.weight,
                b.active_flows,
                b.new_flows,
                b.packets,
                b.bytes
            );
        }
    }
    if !r.vrrp.is_empty() {
        let _ = writeln!(o, "VRRP");
        for v in &r.vrrp {
            let _ = writeln!(
                o,
                "  {:<16} vrid {:<3} priority {:<3} {:<7} transitions {}",
                v.name, v.vrid, v.priority, v.state, v.transitions
            );
        }
    }
    let _ = writeln!(o, "Workers");
    for w in &r.workers {
        let _ = writeln!(
            o,
            "  queue {:<3} rx {:>12}  tx {:>12}  dropped {:>10}  flows {:>9}",
            w.queue, w.rx_packets, w.tx_packets, w.dropped, w.flows
        );
    }
    o
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StatusError + '_ {
    move |source| StatusError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Binds the control socket at `path` with mode 0600. A socket file nobody answers on
/// (left by a dead daemon) is removed first; one a live daemon answers on is an error.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, StatusError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(StatusError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io_err(path))?;
    }
    // SAFETY: umask only swaps the process's file-creation mask; it cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    let l = bound.map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err(path))?;
    l.set_nonblocking(true).map_err(io_err(path))?;
    Ok(l)
}

/// Serves the control socket until the task is dropped. Reload requests go to the
/// control loop through `reloads`.
pub async fn serve(
    listener: std::os::unix::net::UnixListener,
    sources: Arc<Sources>,
    reloads: mpsc::Sender<ReloadRequest>,
) {
    let listener = match tokio::net::UnixListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("control socket: {e}");
            return;
        }
    };
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (sources, reloads) = (Arc::clone(&sources), reloads.clone());
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &sources, &reloads).await {
                tracing::debug!("control socket client: {e}");
            }
        });
    }
}

async fn handle(
    stream: tokio::net::UnixStream,
    sources: &Sources,
    reloads: &mpsc::Sender<ReloadRequest>,
) -> std::io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = tokio::io::BufReader::new(rd.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIMEOUT, rd.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let resp = match serde_json::from_str::<Request>(line.trim()) {
        Ok(Request::Status) => Response::Status(report(sources)),
        Ok(Request::Reload) => {
            let (tx, rx) = oneshot::channel();
            if reloads
                .send(ReloadRequest { reply: Some(tx) })
                .await
                .is_err()
            {
                Response::Error("the daemon is shutting down".into())
            } else {
                match rx.await {
                    Ok(r) => Response::Reload(r),
                    Err(_) => Response::Error("the reload was abandoned".into()),
                }
            }
        }
        Err(e) => Response::Error(format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
    out.push(b'\n');
    wr.write_all(&out).await?;
    wr.shutdown().await
}

/// Sends one request to the daemon at `path` and waits (up to `timeout`) for the answer.
pub fn request(path: &Path, req: Request, timeout: Duration) -> Result<Response, StatusError> {
    let mut s = UnixStream::connect(path).map_err(io_err(path))?;
    s.set_read_timeout(Some(timeout)).map_err(io_err(path))?;
    s.set_write_timeout(Some(timeout)).map_err(io_err(path))?;
    let mut line = serde_json::to_vec(&req).map_err(|e| StatusError::Protocol {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    line.push(b'\n');
    s.write_all(&line).map_err(io_err(path))?;
    let mut answer = String::new();
    BufReader::new(s)
        .read_line(&mut answer)
        .map_err(io_err(path))?;
    serde_json::from_str(answer.trim()).map_err(|e| StatusError::Protocol {
        path: path.to_owned(),
        message: format!("{e}: {:?}", answer.chars().take(200).collect::<String>()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::lb::tables::BackendState;
    use crate::metrics::{BackendView, ServiceView, View};

    fn sample() -> Arc<Sources> {
        let s = Arc::new(Sources::default());
        s.publish_view(View {
            generation: 4,
            services: vec![ServiceView {
                name: "web6".into(),
                vip: "fd99::100".parse().unwrap(),
                protocol: Protocol::Tcp,
                ports: vec![80, 443],
                vrrp: Some("VI_1".into()),
                active: false,
                backends: vec![
                    BackendView {
                        id: 0,
                        address: "fd99::11".parse().unwrap(),
                        weight: 3,
                        healthy: true,
                        state: BackendState::Up,
                        mac_resolved: true,
                        sorry: false,
                    },
                    BackendView {
                        id: 1,
                        address: "fd99::12".parse().unwrap(),
                        weight: 1,
                        healthy: false,
                        state: BackendState::Down,
                        mac_resolved: true,
                        sorry: false,
                    },
                ],
            }],
            vrrp: vec![],
            reloads: 1,
        });
        s
    }

    #[test]
    fn report_and_table_show_services_and_real_servers() {
        let r = report(&sample());
        assert_eq!(r.generation, 4);
        assert_eq!(r.services[0].healthy_real_servers, 1);
        assert_eq!(r.services[0].real_servers[1].state, "down");
        let t = render_table(&r);
        assert!(t.contains("TCP  [fd99::100]:80,443"), "{t}");
        assert!(t.contains("standby (VI_1)"), "{t}");
        assert!(t.contains("  -> fd99::11"), "{t}");
        assert!(t.contains("DOWN (failed)"), "{t}");
        assert!(t.contains("generation 4, 1 reload\n"), "{t}");
        // JSON round trip.
        let j = serde_json::to_string(&Response::Status(r.clone())).unwrap();
        assert_eq!(
            serde_json::from_str::<Response>(&j).unwrap(),
            Response::Status(r)
        );
    }

    #[test]
    fn uptime_is_compact() {
        assert_eq!(format_uptime(5.2), "5s");
        assert_eq!(format_uptime(65.0), "1m05s");
        assert_eq!(format_uptime(3600.0 * 25.0 + 61.0), "1d01h01m01s");
    }

    #[test]
    fn socket_is_0600_answers_status_and_refuses_to_steal_a_live_socket() {
        let dir = std::env::temp_dir().join(format!("xlb-status-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        // A stale file (nobody listening) is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let l = bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (tx, mut rx) = mpsc::channel::<ReloadRequest>(1);
        let sources = sample();
        let p2 = path.clone();
        rt.block_on(async move {
            let server = tokio::spawn(serve(l, sources, tx));
            // A fake control loop answering reloads.
            tokio::spawn(async move {
                while let Some(req) = rx.recv().await {
                    if let Some(reply) = req.reply {
                        let _ = reply.send(ReloadReply::invalid(vec!["x: bad".into()]));
                    }
                }
            });
            let p = p2.clone();
            let (st, rl, steal) = tokio::task::spawn_blocking(move || {
                (
                    request(&p, Request::Status, Duration::from_secs(5)).unwrap(),
                    request(&p, Request::Reload, Duration::from_secs(5)).unwrap(),
                    bind(&p).unwrap_err(),
                )
            })
            .await
            .unwrap();
            match st {
                Response::Status(r) => assert_eq!(r.services[0].name, "web6"),
                other => panic!("{other:?}"),
            }
            match rl {
                Response::Reload(r) => assert_eq!(r.errors, vec!["x: bad".to_string()]),
                other => panic!("{other:?}"),
            }
            assert!(matches!(steal, StatusError::InUse(_)), "{steal}");
            server.abort();
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
