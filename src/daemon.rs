//! The xlb daemon: wires config, XDP program, AF_XDP workers and the control plane.
//!
//! Start-up order: resolve interface facts and real-server MACs, build the first snapshot,
//! load and attach the XDP program (replacing one a crashed xlb left behind), open one
//! AF_XDP socket and worker per rx queue, then become active (VIP addresses on the
//! interface, active flag in the XDP program). The control loop refreshes the XDP
//! program's liveness stamp every 100 ms, so if xlb dies the program drops VIP traffic
//! instead of letting the kernel answer for the VIP (see DESIGN.md §2). SIGTERM/SIGINT:
//! inactive, VIPs removed, workers stopped, XDP detached, exit 0.
//!
//! Operations (the `ops` parts, marked below): Prometheus metrics on `metrics.listen`
//! (crate::metrics; workers' counters are read at scrape time), the control socket of
//! `xlb status` / `xlb reload` (control::status), and hot reload on SIGHUP or `xlb
//! reload` (control::reload): the new file is validated first and the running config
//! stays on any error; the XDP program is never detached by a reload; real servers still
//! present keep their backend ids and flows; removed ones drain.

use std::collections::{BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::config::{Config, Protocol, Queues, SystemEnvironment, XdpMode};
use crate::control::health;
use crate::control::netlink::{self, Netlink, NetlinkError};
use crate::control::publish::{build_snapshot, PublishError, Registry};
use crate::control::reload::{self, ReloadReply, ReloadRequest};
use crate::control::status::{self, StatusError};
use crate::control::vrrp::{self, State as VrrpState, VrrpError, VrrpEvent, VrrpHandle};
use crate::dataplane::bpf::{AttachMode, BpfError, XdpProgram};
use crate::dataplane::forward::{forward, DropReason, Verdict};
use crate::dataplane::worker::{
    control_cpus, run_worker, set_thread_affinity, set_thread_priority, thread_affinity, Action,
    FrameHandler, WorkerPriority, WorkerStats,
};
use crate::dataplane::xsk::{ProgramMode, Xsk, XskConfig, XskError};
use crate::lb::flow::{FlowTable, FlowTimeouts};
use crate::lb::tables::{BackendId, BackendState, Snapshot, PROTO_TCP, PROTO_UDP};
use crate::metrics::{
    BackendView, Metrics, MetricsError, MetricsServer, ReloadResult, ServiceView, Sources, View,
    VrrpView, WorkerSource,
};

/// How often the control loop refreshes the XDP program's liveness stamp.
const TOUCH_EVERY: Duration = Duration::from_millis(100);
/// After this long without a stamp, the XDP program treats xlb as dead.
const STALE_AFTER: Duration = Duration::from_secs(1);
/// How often MACs are looked up while some are unresolved, and refreshed otherwise.
const MAC_RETRY: Duration = Duration::from_secs(1);
const MAC_REFRESH: Duration = Duration::from_secs(30);
/// Most backends counted per worker (ids beyond are forwarded but not counted).
pub const MAX_COUNTED_BACKENDS: usize = 4096;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Interface or netlink trouble.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// XDP program trouble.
    #[error(transparent)]
    Bpf(#[from] BpfError),
    /// AF_XDP socket trouble.
    #[error("AF_XDP socket on queue {queue}: {source}")]
    Xsk {
        /// Queue.
        queue: u32,
        /// Cause.
        source: XskError,
    },
    /// Snapshot building failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Runtime or thread set-up failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A VRRP instance could not start.
    #[error(transparent)]
    Vrrp(#[from] VrrpError),
    /// A worker thread died.
    #[error("worker for queue {0} stopped unexpectedly")]
    WorkerDied(u32),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] StatusError),
}

/// Counters a worker publishes for the control thread (written only by that worker).
pub struct ForwardCounters {
    /// Drops by `DropReason`.
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Frames the XDP program redirected that were not for a service (dropped).
    pub unexpected: AtomicU64,
    /// New flows.
    pub new_flows: AtomicU64,
    /// Packets forwarded per backend id.
    pub backend_packets: Box<[AtomicU64]>,
    /// Bytes forwarded per backend id.
    pub backend_bytes: Box<[AtomicU64]>,
    /// Flows created per backend id.
    pub backend_new_flows: Box<[AtomicU64]>,
    /// Live flows per backend id, as of the worker's last full sweep of its flow table.
    pub backend_flows: Box<[AtomicU64]>,
    /// Live flow-table entries (updated between batches).
    pub flows: AtomicU64,
    /// Flow-table evictions.
    pub evictions: AtomicU64,
}

impl Default for ForwardCounters {
    fn default() -> Self {
        ForwardCounters {
            drops: Default::default(),
            unexpected: AtomicU64::new(0),
            new_flows: AtomicU64::new(0),
            backend_packets: (0..MAX_COUNTED_BACKENDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            backend_bytes: (0..MAX_COUNTED_BACKENDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            backend_new_flows: (0..MAX_COUNTED_BACKENDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            backend_flows: (0..MAX_COUNTED_BACKENDS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            flows: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    // Single writer: a relaxed load+store is enough and avoids a locked RMW.
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// The worker's frame handler: `forward()` over the current snapshot.
pub struct Forwarder {
    shared: Arc<ArcSwap<Snapshot>>,
    snap: Arc<Snapshot>,
    flows: FlowTable,
    now_ms: u64,
    counters: Arc<ForwardCounters>,
    /// ops: per-backend live-flow tally of the sweep in progress (allocated once).
    tally: Box<[u32]>,
    /// ops: next flow-table bucket of the sweep.
    tally_pos: usize,
}

/// Flow-table buckets (8 entries each) counted per batch for the per-backend flow gauges.
const TALLY_BUCKETS: usize = 64;
/// Flow-table buckets expired per batch.
const EXPIRE_BUCKETS: usize = 8;
/// Buckets expired and counted per idle wakeup (every ~100 ms without traffic): a 1M-entry
/// table (131072 buckets) is swept in ~6 s, so gauges settle and flows expire while the
/// queue is quiet, at ~100 µs of work per wakeup.
const IDLE_BUCKETS: usize = 2048;

impl Forwarder {
    /// A handler with its own flow table.
    pub fn new(
        shared: Arc<ArcSwap<Snapshot>>,
        flows: FlowTable,
        counters: Arc<ForwardCounters>,
    ) -> Self {
        let snap = shared.load_full();
        Forwarder {
            shared,
            snap,
            flows,
            now_ms: 0,
            counters,
            tally: vec![0; MAX_COUNTED_BACKENDS].into_boxed_slice(),
            tally_pos: 0,
        }
    }

    /// New snapshot if published; expire up to `expire` flow-table buckets; count `tally_buckets`
    /// buckets of the per-backend flow sweep (gauges published when it wraps).
    fn housekeeping(&mut self, now_ms: u64, expire: usize, tally_buckets: usize) {
        self.now_ms = now_ms;
        let cur = self.shared.load();
        if !Arc::ptr_eq(&cur, &self.snap) {
            self.snap = Arc::clone(&cur);
        }
        // Bounded housekeeping between batches.
        self.flows.expire_some(now_ms, expire);
        self.counters
            .flows
            .store(self.flows.len() as u64, Ordering::Relaxed);
        self.counters
            .evictions
            .store(self.flows.evictions(), Ordering::Relaxed);
        // ops: a bounded slice of the per-backend flow count; published at each wrap.
        let tally = &mut self.tally;
        self.tally_pos =
            self.flows
                .for_each_live_in(self.tally_pos, tally_buckets, now_ms, |_, b| {
                    if let Some(t) = tally.get_mut(b as usize) {
                        *t += 1;
                    }
                });
        if self.tally_pos == 0 {
            for (t, c) in self
                .tally
                .iter_mut()
                .zip(self.counters.backend_flows.iter())
            {
                if *t != 0 || c.load(Ordering::Relaxed) != 0 {
                    c.store(u64::from(*t), Ordering::Relaxed);
                }
                *t = 0;
            }
        }
    }
}

impl FrameHandler for Forwarder {
    fn begin_batch(&mut self, now_ms: u64) {
        self.housekeeping(now_ms, EXPIRE_BUCKETS, TALLY_BUCKETS);
    }

    fn idle(&mut self, now_ms: u64) {
        self.housekeeping(now_ms, IDLE_BUCKETS, IDLE_BUCKETS);
    }

    #[inline]
    fn handle(&mut self, frame: &mut [u8]) -> Action {
        let len = frame.len() as u64;
        match forward(frame, &self.snap, &mut self.flows, self.now_ms) {
            Verdict::Tx { backend, new_flow } => {
                if new_flow {
                    bump(&self.counters.new_flows, 1);
                    if let Some(c) = self.counters.backend_new_flows.get(backend as usize) {
                        bump(c, 1);
                    }
                }
                if let Some(c) = self.counters.backend_packets.get(backend as usize) {
                    bump(c, 1);
                    bump(&self.counters.backend_bytes[backend as usize], len);
                }
                Action::Tx
            }
            Verdict::Pass => {
                bump(&self.counters.unexpected, 1);
                Action::Drop
            }
            Verdict::Drop(r) => {
                bump(&self.counters.drops[r as usize], 1);
                Action::Drop
            }
        }
    }
}

struct WorkerHandle {
    queue: u32,
    thread: std::thread::JoinHandle<()>,
    stats: Arc<WorkerStats>,
    counters: Arc<ForwardCounters>,
}

/// Runs xlb until SIGTERM/SIGINT (no reload: no configuration file path).
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    run_with(cfg, RunOptions::default())
}

/// ops: how the daemon was started.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The configuration file, re-read on SIGHUP and `xlb reload`.
    pub config_path: Option<PathBuf>,
}

/// Runs xlb until SIGTERM/SIGINT; reloads `opts.config_path` on SIGHUP / `xlb reload`.
pub fn run_with(cfg: Config, opts: RunOptions) -> Result<(), DaemonError> {
    // Before any thread exists: every thread spawned from here inherits the mask, and the
    // workers pin themselves to their cores later.
    place_control_threads(&cfg.workers.cores);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(cfg, opts))
}

/// Keeps the control and metrics threads off the workers' cores, so that a SCHED_FIFO
/// worker at full load never delays a VRRP advert or a health check (the kernel's RT
/// throttling would leave them only 5% of a worker's core).
fn place_control_threads(worker_cores: &[usize]) {
    let allowed = match thread_affinity() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot read the CPU affinity; control threads are not placed");
            return;
        }
    };
    match control_cpus(&allowed, worker_cores) {
        Some(cpus) => match set_thread_affinity(&cpus) {
            Ok(()) => info!(
                ?cpus,
                ?worker_cores,
                "control threads placed off the worker cores"
            ),
            Err(e) => warn!(error = %e, ?cpus, "cannot place the control threads"),
        },
        None if allowed.iter().all(|c| worker_cores.contains(c)) => warn!(
            ?worker_cores,
            "workers.cores covers every CPU xlb may run on: the control thread (VRRP, health \
             checks) shares cores with the workers and may be delayed at full load; leave a \
             core out of workers.cores"
        ),
        None => {}
    }
}

/// XDP service keys of the services this director is active for.
fn service_keys(
    cfg: &Config,
    active: impl Fn(Option<&str>) -> bool,
) -> Vec<(IpAddr, u16, u8, u32)> {
    let mut out = Vec::new();
    for (i, vs) in cfg.virtual_servers.iter().enumerate() {
        if !active(vs.vrrp.as_deref()) {
            continue;
        }
        let proto = match vs.protocol {
            Protocol::Tcp => PROTO_TCP,
            Protocol::Udp => PROTO_UDP,
        };
        if vs.ports.is_empty() {
            out.push((vs.vip, 0, proto, i as u32));
        }
        for &p in &vs.ports {
            out.push((vs.vip, p, proto, i as u32));
        }
    }
    out
}

/// VIPs of the services matching `filter` (by owning VRRP instance).
fn vips(cfg: &Config, filter: impl Fn(Option<&str>) -> bool) -> BTreeSet<IpAddr> {
    cfg.virtual_servers
        .iter()
        .filter(|s| filter(s.vrrp.as_deref()))
        .map(|s| s.vip)
        .collect()
}

/// Something the control loop reacts to.
#[derive(Debug)]
pub enum ControlEvent {
    /// A VRRP instance changed state.
    Vrrp(VrrpEvent),
    /// A health check changed a real server's state.
    Health {
        /// Backend.
        id: BackendId,
        /// New state.
        up: bool,
        /// Why, for the log.
        reason: String,
    },
}

/// The control plane's state: config, backend registry, VRRP mastership, and what it has
/// told the kernel (VIP addresses) and the data plane (snapshot, XDP services).
pub struct Controller {
    cfg: Config,
    reg: Registry,
    generation: u64,
    local_mac: [u8; 6],
    shared: Arc<ArcSwap<Snapshot>>,
    prog: XdpProgram,
    nl: Netlink,
    ifindex: u32,
    /// VRRP instances currently MASTER.
    masters: HashSet<String>,
    /// VIP addresses xlb has put on the interface.
    held: BTreeSet<IpAddr>,
}

impl Controller {
    /// True when this director serves services owned by `instance` (None: not VRRP-owned).
    pub fn is_active(&self, instance: Option<&str>) -> bool {
        instance.is_none_or(|n| self.masters.contains(n))
    }

    /// Builds and publishes a new snapshot from the current config and states.
    pub fn publish(&mut self) {
        self.generation += 1;
        match build_snapshot(&self.cfg, &mut self.reg, self.generation, self.local_mac) {
            Ok(mut s) => {
                self.drain_removed(&mut s);
                self.shared.store(Arc::new(s))
            }
            Err(e) => error!("publishing a new snapshot failed: {e}"),
        }
    }

    /// Brings VIP addresses and XDP services in line with VRRP mastership.
    pub async fn apply_activity(&mut self) {
        let masters = self.masters.clone();
        let active = |i: Option<&str>| i.is_none_or(|n| masters.contains(n));
        let want = vips(&self.cfg, active);
        // Stop steering first when losing VIPs, start steering last when gaining them.
        if let Err(e) = self.prog.set_services(&service_keys(&self.cfg, active)) {
            error!("updating the XDP service map failed: {e}");
        }
        for vip in self.held.difference(&want).copied().collect::<Vec<_>>() {
            match self.nl.del_address(self.ifindex, vip).await {
                Ok(()) => {
                    info!("VIP {vip} removed from {}", self.cfg.interface);
                    self.held.remove(&vip);
                }
                Err(e) => warn!("removing VIP {vip}: {e}"),
            }
        }
        for vip in want.difference(&self.held).copied().collect::<Vec<_>>() {
            match self.nl.add_address(self.ifindex, vip).await {
                Ok(()) => {
                    info!("VIP {vip} added to {}", self.cfg.interface);
                    self.held.insert(vip);
                }
                Err(e) => error!("adding VIP {vip}: {e}"),
            }
        }
    }

    /// Handles one control event.
    pub async fn on_event(&mut self, ev: ControlEvent) {
        match ev {
            ControlEvent::Vrrp(ev) => {
                info!(
                    "VRRP {} -> {}: {}",
                    ev.instance,
                    ev.state.as_str(),
                    ev.reason
                );
                let changed = if ev.state == VrrpState::Master {
                    self.masters.insert(ev.instance)
                } else {
                    self.masters.remove(&ev.instance)
                };
                if changed {
                    self.apply_activity().await;
                }
            }
            ControlEvent::Health { id, up, reason } => {
                let addr = self.reg.key(id).map(|k| (k.service.clone(), k.addr));
                let was_serving = health::serving(&self.cfg, &self.reg, id); // health: all-down log
                if let Some(st) = self.reg.status_mut(id) {
                    if st.healthy != up {
                        st.healthy = up;
                        if let Some((svc, addr)) = addr {
                            let state = if up { "UP" } else { "DOWN" };
                            let port = self.check_port(&svc, addr);
                            let at = std::net::SocketAddr::new(addr, port);
                            info!("{svc} {at} {state}: {reason}");
                        }
                        self.publish();
                        health::log_serving_change(&self.cfg, &self.reg, id, was_serving);
                    }
                }
            }
        }
    }

    /// The port a real server is checked on (for log lines like `web 10.0.0.11:80 DOWN`):
    /// its check's port, else the service's first port, else 0.
    fn check_port(&self, service: &str, addr: IpAddr) -> u16 {
        let Some(vs) = self.cfg.virtual_servers.iter().find(|v| v.name == service) else {
            return 0;
        };
        vs.real_servers
            .iter()
            .find(|r| r.address == addr)
            .and_then(|r| r.check.as_ref())
            .map(|c| c.port)
            .or_else(|| vs.ports.first().copied())
            .unwrap_or(0)
    }

    /// Looks MACs up; publishes when anything changed.
    async fn refresh_macs(&mut self) -> bool {
        let wanted = self.reg.unresolved(&self.cfg);
        if wanted.is_empty() {
            return false;
        }
        let addrs: Vec<IpAddr> = wanted.iter().map(|(_, a)| *a).collect();
        let found = match self.nl.neighbours(self.ifindex, &addrs).await {
            Ok(f) => f,
            Err(e) => {
                warn!("neighbour table lookup failed: {e}");
                return false;
            }
        };
        let mut changed = false;
        for (id, addr) in wanted {
            let mac = found.get(&addr).copied();
            if mac.is_none() {
                netlink::solicit(addr);
            }
            if let (Some(st), Some(m)) = (self.reg.status_mut(id), mac) {
                if st.mac != Some(m) {
                    info!("real server {addr}: MAC {}", netlink::format_mac(&m));
                    st.mac = Some(m);
                    changed = true;
                }
            }
        }
        if changed {
            self.publish();
        }
        changed
    }

    fn unresolved_count(&self) -> usize {
        self.reg
            .unresolved(&self.cfg)
            .iter()
            .filter(|(id, _)| self.reg.status(*id).is_some_and(|s| s.mac.is_none()))
            .count()
    }
}

// ------------------------------------------------------------------ ops: reload, view

/// ops: what the operations side keeps next to the controller.
struct Ops {
    metrics: Metrics,
    config_path: Option<PathBuf>,
    reloads: u64,
}

impl Controller {
    /// Real servers removed from the config (by a reload) drain instead of going down:
    /// established flows stay on them until they end or idle out, and no new flow goes
    /// to them. One whose service is gone, that failed its checks, or has no MAC stays
    /// down. Re-adding the address gives it back its old backend id.
    fn drain_removed(&self, snap: &mut Snapshot) {
        for (id, b) in snap.backends.iter_mut().enumerate() {
            if b.service != u32::MAX || b.mac.is_none() {
                continue;
            }
            let id = id as BackendId;
            let Some(key) = self.reg.key(id) else {
                continue;
            };
            if key.sorry || !self.reg.status(id).is_some_and(|s| s.healthy) {
                continue;
            }
            let svc = self
                .cfg
                .virtual_servers
                .iter()
                .position(|v| v.name == key.service);
            if let Some(si) = svc {
                b.state = BackendState::Drain;
                b.service = si as u32;
            }
        }
    }

    /// What metrics and `xlb status` show, from the config, the registry and the
    /// snapshot the workers use.
    fn view(&self, instances: &[VrrpHandle], reloads: u64) -> View {
        let snap = self.shared.load();
        let backend = |id: Option<BackendId>, address: IpAddr, weight: u32, sorry: bool| {
            let id = id?;
            let b = snap.backend(id)?;
            Some(BackendView {
                id,
                address,
                weight,
                healthy: self.reg.status(id).is_none_or(|s| s.healthy),
                state: b.state,
                mac_resolved: b.mac.is_some(),
                sorry,
            })
        };
        let services = self
            .cfg
            .virtual_servers
            .iter()
            .map(|vs| {
                let key = |addr, sorry| crate::control::publish::BackendKey {
                    service: vs.name.clone(),
                    addr,
                    sorry,
                };
                let mut backends: Vec<BackendView> = vs
                    .real_servers
                    .iter()
                    .filter_map(|rs| {
                        let id = self.reg.get(&key(rs.address, false));
                        backend(id, rs.address, rs.weight, false)
                    })
                    .collect();
                if let Some(addr) = vs.sorry_server {
                    backends.extend(backend(self.reg.get(&key(addr, true)), addr, 0, true));
                }
                ServiceView {
                    name: vs.name.clone(),
                    vip: vs.vip,
                    protocol: vs.protocol,
                    ports: vs.ports.clone(),
                    vrrp: vs.vrrp.clone(),
                    active: self.is_active(vs.vrrp.as_deref()),
                    backends,
                }
            })
            .collect();
        let vrrp = self
            .cfg
            .vrrp
            .iter()
            .map(|inst| {
                let h = instances.iter().find(|h| h.name() == inst.name);
                VrrpView {
                    name: inst.name.clone(),
                    vrid: inst.vrid,
                    priority: inst.priority,
                    state: h.map_or(VrrpState::Initialize, |h| h.state()),
                    counters: h.map(|h| h.counters()).unwrap_or_default(),
                }
            })
            .collect();
        View {
            generation: self.generation,
            services,
            vrrp,
            reloads,
        }
    }
}

/// ops: removes the control socket file when the daemon stops, on every path.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            warn!("removing the control socket {}: {e}", self.0.display());
        }
    }
}

/// Starts the VRRP instance `name` of the current config.
fn spawn_instance(
    ctl: &Controller,
    name: &str,
    vtx: &tokio::sync::mpsc::Sender<VrrpEvent>,
) -> Result<Option<VrrpHandle>, VrrpError> {
    let Some(inst) = ctl.cfg.vrrp.iter().find(|i| i.name == name) else {
        return Ok(None);
    };
    let owned: Vec<IpAddr> = vips(&ctl.cfg, |i| i == Some(inst.name.as_str()))
        .into_iter()
        .collect();
    vrrp::spawn(inst, owned, vtx.clone()).map(Some)
}

/// ops: one reload (SIGHUP or `xlb reload`). Validates first: on any error nothing
/// changes. Never detaches the XDP program.
async fn reload(
    ctl: &mut Controller,
    ops: &mut Ops,
    instances: &mut Vec<VrrpHandle>,
    health: &mut health::HealthSet,
    vtx: &tokio::sync::mpsc::Sender<VrrpEvent>,
) -> ReloadReply {
    let Some(path) = ops.config_path.clone() else {
        warn!("reload: xlb was started without a configuration file path; nothing to reload");
        return ReloadReply::invalid(vec!["no configuration file to reload".into()]);
    };
    info!("reloading {}", path.display());
    let (new, diff) = match reload::prepare(&ctl.cfg, &path, &SystemEnvironment) {
        Ok(x) => x,
        Err(e) => {
            let reply = ReloadReply::from_error(&e);
            match &e {
                reload::ReloadError::Invalid(errors) => {
                    for line in errors {
                        error!("reload: {line}");
                    }
                    error!(
                        "reload of {} failed ({} error{}): the running configuration stays",
                        path.display(),
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" }
                    );
                    ops.metrics.reloaded(ReloadResult::Invalid);
                }
                reload::ReloadError::RestartNeeded(_) => {
                    error!("reload of {} refused: {e}", path.display());
                    ops.metrics.reloaded(ReloadResult::Refused);
                }
            }
            return reply;
        }
    };
    let mut changes = diff.describe();
    // Which services could take new flows before the reload (for the all-down log lines).
    let serving_before: std::collections::HashMap<String, bool> = ctl
        .cfg
        .virtual_servers
        .iter()
        .map(|vs| (vs.name.clone(), health::service_serving(vs, &ctl.reg)))
        .collect();
    ctl.cfg = new;
    // VRRP instances removed or changed stop first (a master sends priority 0, so the
    // backup takes over at once instead of after Master_Down_Interval).
    for name in diff.vrrp_removed.iter().chain(&diff.vrrp_changed) {
        if let Some(pos) = instances.iter().position(|h| h.name() == name) {
            instances.remove(pos).shutdown().await;
        }
        ctl.masters.remove(name);
    }
    // Registry re-sync (stable ids), drain of removed servers, new snapshot; MACs of new
    // real servers; XDP service map and VIP addresses.
    ctl.publish();
    ctl.refresh_macs().await;
    ctl.apply_activity().await;
    for name in diff.vrrp_added.iter().chain(&diff.vrrp_changed) {
        match spawn_instance(ctl, name, vtx) {
            Ok(Some(h)) => instances.push(h),
            Ok(None) => {}
            Err(e) => {
                error!("reload: VRRP instance {name} did not start: {e}");
                changes.push(format!("ERROR: VRRP instance {name} did not start: {e}"));
            }
        }
    }
    // Health checks: stop those of removed servers, (re)start added or changed ones (from
    // each server's current state); unchanged checks keep running untouched.
    health.update(&ctl.cfg, &ctl.reg);
    for vs in &ctl.cfg.virtual_servers {
        let before = serving_before.get(&vs.name).copied();
        health::log_service_serving(vs, before, health::service_serving(vs, &ctl.reg));
    }
    ops.reloads += 1;
    ops.metrics.reloaded(ReloadResult::Applied);
    if changes.is_empty() {
        info!("reload of {}: no changes", path.display());
    }
    for c in &changes {
        info!("reload: {c}");
    }
    ReloadReply::applied(changes)
}

async fn run_async(cfg: Config, opts: RunOptions) -> Result<(), DaemonError> {
    let ifname = cfg.interface.clone();
    let ifindex = netlink::ifindex(&ifname)?;
    let local_mac = netlink::mac_address(&ifname)?;
    let nl = Netlink::connect()?;
    // ops: bind the metrics port and the control socket before touching the interface,
    // so a taken port or a running daemon fails the start cleanly.
    let sources = Arc::new(Sources::default());
    let metrics = Metrics::new(Arc::clone(&sources))?;
    let metrics_listener = crate::metrics::bind(cfg.metrics.listen)?;
    let control_path = cfg.control_socket.clone();
    let control_listener = status::bind(&control_path)?;
    let _socket_file = RemoveOnDrop(control_path.clone());
    let mut ops = Ops {
        metrics: metrics.clone(),
        config_path: opts.config_path,
        reloads: 0,
    };
    let mut reg = Registry::default();
    reg.sync(&cfg);
    let shared = Arc::new(ArcSwap::from_pointee(build_snapshot(
        &cfg, &mut reg, 1, local_mac,
    )?));

    let mut prog = XdpProgram::load()?;
    let want = match cfg.xdp_mode {
        XdpMode::Native => AttachMode::Native,
        XdpMode::Generic => AttachMode::Generic,
    };
    let mode = prog.attach(&ifname, want)?;
    info!("XDP program attached to {ifname} in {mode:?} mode");
    prog.set_stale_after(STALE_AFTER)?;
    // VRRP failover: when xlb is killed its AF_XDP sockets close at once, a second before
    // the stamp goes stale; frames passed meanwhile would make the kernel RST for the VIP
    // and kill the connections the backup is about to take over. Drop them instead.
    prog.set_drop_unbound(true)?;
    prog.touch()?;
    prog.set_active(true)?;

    let mut ctl = Controller {
        cfg,
        reg,
        generation: 1,
        local_mac,
        shared: Arc::clone(&shared),
        prog,
        nl,
        ifindex,
        masters: HashSet::new(),
        held: BTreeSet::new(),
    };

    // First MAC resolution: solicit, then give the kernel a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    ctl.refresh_macs().await;
    while ctl.unresolved_count() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.refresh_macs().await;
    }
    for (id, addr) in ctl.reg.unresolved(&ctl.cfg) {
        if ctl.reg.status(id).is_some_and(|s| s.mac.is_none()) {
            warn!("real server {addr}: no MAC yet; it takes no traffic until resolved");
        }
    }

    let workers = start_workers(&ctl, &shared)?;
    // ops: metrics and control socket.
    sources.set_workers(
        workers
            .iter()
            .map(|w| WorkerSource {
                queue: w.queue,
                stats: Arc::clone(&w.stats),
                counters: Arc::clone(&w.counters),
            })
            .collect(),
    );
    let metrics_server = MetricsServer::start(metrics_listener, metrics, Arc::clone(&sources))?;
    info!("metrics on http://{}/metrics", metrics_server.local_addr());
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<ReloadRequest>(8);
    let control_task = tokio::spawn(status::serve(
        control_listener,
        Arc::clone(&sources),
        reload_tx,
    ));
    info!("control socket {}", control_path.display());

    // VIPs owned by a VRRP instance may have been left on the interface by a crashed xlb:
    // this director holds none of them until its instance becomes MASTER.
    for vip in vips(&ctl.cfg, |i| i.is_some()) {
        if let Err(e) = ctl.nl.del_address(ifindex, vip).await {
            warn!("removing leftover VIP {vip}: {e}");
        }
    }
    ctl.apply_activity().await;
    info!(
        "running: {} virtual services, {} VRRP instances",
        ctl.cfg.virtual_servers.len(),
        ctl.cfg.vrrp.len()
    );

    let (tx, mut rx) = tokio::sync::mpsc::channel::<ControlEvent>(256);
    let (vtx, mut vrx) = tokio::sync::mpsc::channel::<VrrpEvent>(64);
    let mut instances: Vec<VrrpHandle> = Vec::new();
    for inst in &ctl.cfg.vrrp {
        let owned: Vec<IpAddr> = vips(&ctl.cfg, |i| i == Some(inst.name.as_str()))
            .into_iter()
            .collect();
        instances.push(vrrp::spawn(inst, owned, vtx.clone())?);
    }
    // (vtx stays open: a reload may restart VRRP instances.)
    // Health checks: one task per checked real server on this runtime; dropped (aborted)
    // when the loop ends.
    let mut health = health::spawn_all(&ctl.cfg, &ctl.reg, tx.clone());
    info!("health checks: {} real servers checked", health.len());
    // ops: the data plane is attached; show the first view.
    sources.set_health(health.handle());
    sources.set_ready(true);
    sources.publish_view(ctl.view(&instances, ops.reloads));
    let mut sighup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut touch = tokio::time::interval(TOUCH_EVERY);
    let mut mac_tick = tokio::time::interval(MAC_RETRY);
    let mut last_full_refresh = Instant::now();
    let result = loop {
        // ops: the view is republished after every event but the liveness tick.
        let mut tick_only = false;
        tokio::select! {
            _ = touch.tick() => {
                tick_only = true;
                if let Err(e) = ctl.prog.touch() {
                    warn!("refreshing the XDP liveness stamp failed: {e}");
                }
                if let Ok(s) = ctl.prog.stats() {
                    sources.set_xdp(s);
                }
                if let Some(w) = workers.iter().find(|w| w.thread.is_finished()) {
                    break Err(DaemonError::WorkerDied(w.queue));
                }
            }
            _ = sighup.recv() => {
                info!("SIGHUP: reloading the configuration");
                reload(&mut ctl, &mut ops, &mut instances, &mut health, &vtx).await;
            }
            Some(req) = reload_rx.recv() => {
                let reply = reload(&mut ctl, &mut ops, &mut instances, &mut health, &vtx).await;
                if let Some(r) = req.reply {
                    let _ = r.send(reply);
                }
            }
            _ = mac_tick.tick() => {
                let full = last_full_refresh.elapsed() >= MAC_REFRESH;
                if full {
                    last_full_refresh = Instant::now();
                }
                if full || ctl.unresolved_count() > 0 {
                    ctl.refresh_macs().await;
                }
            }
            Some(ev) = vrx.recv() => ctl.on_event(ControlEvent::Vrrp(ev)).await,
            Some(ev) = rx.recv() => ctl.on_event(ev).await,
            _ = sigterm.recv() => { info!("SIGTERM: shutting down"); break Ok(()); }
            _ = sigint.recv() => { info!("SIGINT: shutting down"); break Ok(()); }
        }
        if !tick_only {
            sources.publish_view(ctl.view(&instances, ops.reloads));
        }
    };
    // ops: no more reloads or readiness.
    sources.set_ready(false);
    control_task.abort();
    drop(reload_rx);

    drop(health);
    // Shutdown: hand VRRP over (priority 0), stop claiming the VIPs, stop the data plane.
    // Events the instances send while shutting down are drained concurrently, so an
    // instance never blocks on a full channel.
    let shutdown = futures::future::join_all(instances.into_iter().map(|h| h.shutdown()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(ev) = vrx.recv() => info!("VRRP {} -> {}: {}", ev.instance, ev.state.as_str(), ev.reason),
        }
    }
    ctl.masters.clear();
    let _ = ctl.prog.set_active(false);
    let _ = ctl.prog.set_services(&[]);
    for vip in ctl.held.clone() {
        if let Err(e) = ctl.nl.del_address(ifindex, vip).await {
            warn!("removing VIP {vip}: {e}");
        }
    }
    stop_workers(&ctl, workers);
    ctl.prog.detach()?;
    info!("XDP program detached from {ifname}");
    // ops: metrics served until the data plane is gone; the socket file goes with us.
    metrics_server.stop();
    result
}

static STOP: AtomicBool = AtomicBool::new(false);

fn start_workers(
    ctl: &Controller,
    shared: &Arc<ArcSwap<Snapshot>>,
) -> Result<Vec<WorkerHandle>, DaemonError> {
    let cfg = &ctl.cfg;
    let ifname = cfg.interface.clone();
    let queues: Vec<u32> = match &cfg.workers.queues {
        Queues::All => (0..netlink::rx_queue_count(&ifname)?).collect(),
        Queues::List(q) => q.clone(),
    };
    let mut workers = Vec::new();
    let timeouts = FlowTimeouts {
        tcp_ms: cfg.flows.tcp_timeout.as_millis() as u64,
        tcp_fin_ms: cfg.flows.tcp_fin_timeout.as_millis() as u64,
        udp_ms: cfg.flows.udp_timeout.as_millis() as u64,
    };
    let per_worker_flows = (cfg.flows.capacity / queues.len().max(1)).max(1024);
    for (i, &queue) in queues.iter().enumerate() {
        let core = cfg
            .workers
            .cores
            .get(i % cfg.workers.cores.len().max(1))
            .copied();
        let sched = cfg.workers.sched;
        let xcfg = XskConfig {
            frames: cfg.workers.frames,
            batch_size: cfg.workers.batch_size,
            ..XskConfig::default()
        };
        let stats = Arc::new(WorkerStats::default());
        let counters = Arc::new(ForwardCounters::default());
        let (fd_tx, fd_rx) = std::sync::mpsc::channel();
        let (ifn, st, ct, sh) = (
            ifname.clone(),
            Arc::clone(&stats),
            Arc::clone(&counters),
            Arc::clone(shared),
        );
        let thread = std::thread::Builder::new()
            .name(format!("xlb-worker-{queue}"))
            .spawn(move || {
                let mut xsk = match Xsk::open(&ifn, queue, &xcfg, ProgramMode::OwnProgram) {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = fd_tx.send(Err(e));
                        return;
                    }
                };
                // A worker on a pinned core runs as `workers.sched` says (default
                // SCHED_FIFO 1, measured in BENCHMARKS.md, "Data-plane tuning"): it then
                // preempts the queue's NAPI poller whenever it has frames, so the poller never
                // outruns it and wastes the core on frames it must drop at the redirect; the
                // worker sleeps in poll() whenever its RX ring is empty, which is when the
                // poller runs. Unpinned workers keep the default policy.
                let prio = if core.is_some() {
                    sched
                } else {
                    WorkerPriority::Inherit
                };
                if let Err(e) = set_thread_priority(prio) {
                    warn!("worker {queue}: priority {prio:?} not set: {e}");
                }
                let _ = fd_tx.send(Ok(xsk.fd()));
                let mut handler =
                    Forwarder::new(sh, FlowTable::new(per_worker_flows, timeouts), ct);
                match run_worker(&mut xsk, &mut handler, &st, &STOP, core) {
                    Ok(acct) => info!("worker {queue} stopped: {acct:?}"),
                    Err(e) => error!("worker {queue} failed: {e}"),
                }
            })?;
        let fd = fd_rx
            .recv()
            .map_err(|_| DaemonError::WorkerDied(queue))?
            .map_err(|source| DaemonError::Xsk { queue, source })?;
        ctl.prog.register_xsk(queue, fd)?;
        info!("worker for queue {queue} on core {core:?}");
        workers.push(WorkerHandle {
            queue,
            thread,
            stats,
            counters,
        });
    }
    Ok(workers)
}

fn stop_workers(ctl: &Controller, workers: Vec<WorkerHandle>) {
    STOP.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = ctl.prog.unregister_xsk(w.queue);
        let _ = w.thread.join();
        let drops: u64 = w
            .counters
            .drops
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let by_reason: Vec<String> = DropReason::ALL
            .iter()
            .map(|&r| {
                let n = w.counters.drops[r as usize].load(Ordering::Relaxed);
                format!("{}={n}", r.as_str())
            })
            .collect();
        info!(
            "worker {}: {:?}, new flows {}, drops {} [{}], unexpected {}",
            w.queue,
            w.stats,
            w.counters.new_flows.load(Ordering::Relaxed),
            drops,
            by_reason.join(" "),
            w.counters.unexpected.load(Ordering::Relaxed)
        );
    }
}
