//! Prometheus metrics: one registry, a collector that reads the data plane's counters at
//! scrape time, and a small HTTP server (`/metrics`, `/healthz`, `/readyz`).
//!
//! The hot path never touches Prometheus. Workers keep their own counters
//! ([`WorkerStats`], [`ForwardCounters`]: one writer each, relaxed stores, no shared cache
//! lines between workers); [`XlbCollector`] sums them over workers when scraped. What the
//! control plane knows (services, real servers, weights, health, VRRP) reaches the
//! collector as an immutable [`View`] the daemon republishes after every change; the XDP
//! program's per-CPU counters are sampled by the control loop (every 100 ms) into
//! [`Sources`], so a scrape never runs a BPF syscall on the control thread's behalf.
//!
//! The HTTP server is `tiny_http` on its own thread ("xlb-metrics"): scraping, encoding and
//! slow or stuck scrapers stay off the control plane's single-threaded tokio runtime,
//! where VRRP adverts (as often as every 10 ms) must never wait behind an HTTP client.
//!
//! Naming follows the Prometheus conventions: `xlb_` prefix, counters end in `_total`,
//! base units (bytes, seconds); labels `service` (virtual service name), `vip`, `backend`
//! (real server address), `worker` (rx queue), `vrrp_instance` (not `instance`, which
//! Prometheus itself sets on every scraped series).
//!
//! Guarantees: a scrape reads only atomics and immutable snapshots (it never blocks the
//! data plane or the control loop); metric names and label sets are fixed (every family
//! is described in [`XlbCollector::desc`]); `/readyz` answers 200 only between the data
//! plane being attached and shutdown starting.

use std::collections::HashMap;
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, IntCounterVec, Opts, Registry, TextEncoder};

use crate::config::Protocol;
use crate::control::health::HealthHandle;
use crate::control::vrrp::{State as VrrpState, VrrpCounters};
use crate::daemon::ForwardCounters;
use crate::dataplane::bpf::XdpStats;
use crate::dataplane::forward::DropReason;
use crate::dataplane::worker::{WorkerStats, BATCH_BUCKETS};
use crate::lb::tables::{BackendId, BackendState};

/// Errors setting metrics up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address could not be bound.
    #[error("metrics.listen {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The HTTP server could not start.
    #[error("metrics HTTP server: {0}")]
    Server(String),
    /// Registering a collector failed (a name registered twice).
    #[error("metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}

/// One real server (or sorry server) as the control plane sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendView {
    /// Stable backend id (index into the workers' per-backend counters).
    pub id: BackendId,
    /// Address.
    pub address: IpAddr,
    /// Configured weight (0 = drain).
    pub weight: u32,
    /// Health checks say up.
    pub healthy: bool,
    /// What the data plane does with it.
    pub state: BackendState,
    /// MAC known (a server without one takes no traffic).
    pub mac_resolved: bool,
    /// The service's sorry server.
    pub sorry: bool,
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceView {
    /// Name.
    pub name: String,
    /// VIP.
    pub vip: IpAddr,
    /// Protocol.
    pub protocol: Protocol,
    /// Ports (empty: every port).
    pub ports: Vec<u16>,
    /// Owning VRRP instance.
    pub vrrp: Option<String>,
    /// This director currently serves it (no VRRP instance, or its instance is MASTER).
    pub active: bool,
    /// Real servers, then the sorry server if any.
    pub backends: Vec<BackendView>,
}

/// One VRRP instance.
#[derive(Clone, Debug)]
pub struct VrrpView {
    /// Name.
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Configured priority.
    pub priority: u8,
    /// Current state.
    pub state: VrrpState,
    /// Its counters.
    pub counters: Arc<VrrpCounters>,
}

/// What the control plane knows, published after every change.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Snapshot generation the view matches.
    pub generation: u64,
    /// Services in config order.
    pub services: Vec<ServiceView>,
    /// VRRP instances in config order.
    pub vrrp: Vec<VrrpView>,
    /// Successful reloads since start.
    pub reloads: u64,
}

/// The counters of one worker.
#[derive(Clone)]
pub struct WorkerSource {
    /// Its rx queue.
    pub queue: u32,
    /// Ring-loop statistics.
    pub stats: Arc<WorkerStats>,
    /// Forwarding counters.
    pub counters: Arc<ForwardCounters>,
}

/// Per-backend sums over workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendTotals {
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Flows created.
    pub new_flows: u64,
    /// Flows in the flow tables (refreshed by each worker as it sweeps its table).
    pub active_flows: u64,
}

/// Everything the collector, `/readyz` and `xlb status` read; shared by the daemon.
pub struct Sources {
    view: ArcSwap<View>,
    workers: ArcSwap<Vec<WorkerSource>>,
    xdp: Mutex<Option<XdpStats>>,
    checks: Mutex<HashMap<BackendId, Duration>>,
    health: Mutex<Option<HealthHandle>>,
    ready: AtomicBool,
    started: Instant,
    started_wall: SystemTime,
}

impl Default for Sources {
    fn default() -> Self {
        Sources {
            view: ArcSwap::from_pointee(View::default()),
            workers: ArcSwap::from_pointee(Vec::new()),
            xdp: Mutex::new(None),
            checks: Mutex::new(HashMap::new()),
            health: Mutex::new(None),
            ready: AtomicBool::new(false),
            started: Instant::now(),
            started_wall: SystemTime::now(),
        }
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("ready", &self.ready())
            .field("workers", &self.workers.load().len())
            .finish_non_exhaustive()
    }
}

impl Sources {
    /// Sets the workers (once they run).
    pub fn set_workers(&self, workers: Vec<WorkerSource>) {
        self.workers.store(Arc::new(workers));
    }

    /// The workers.
    pub fn workers(&self) -> Arc<Vec<WorkerSource>> {
        self.workers.load_full()
    }

    /// Publishes a new control-plane view.
    pub fn publish_view(&self, view: View) {
        self.view.store(Arc::new(view));
    }

    /// The current view.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    /// Stores the latest XDP program counters.
    pub fn set_xdp(&self, stats: XdpStats) {
        *self.xdp.lock().unwrap_or_else(PoisonError::into_inner) = Some(stats);
    }

    /// The latest XDP program counters.
    pub fn xdp(&self) -> Option<XdpStats> {
        *self.xdp.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hook for health checks: records how long the last probe of backend `id` took
    /// (exported as `xlb_backend_check_duration_seconds`). Callable from any thread.
    pub fn record_check(&self, id: BackendId, latency: Duration) {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, latency);
    }

    /// Gives the running health checks' counters (their last probe durations).
    pub fn set_health(&self, handle: HealthHandle) {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    }

    /// The last probe duration of backend `id`: recorded with [`Sources::record_check`],
    /// else from the running health check (none before its first probe).
    pub fn check_latency(&self, id: BackendId) -> Option<Duration> {
        let recorded = self
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .copied();
        recorded.or_else(|| {
            let h = self.health.lock().unwrap_or_else(PoisonError::into_inner);
            let stats = h.as_ref()?.get(id)?;
            if stats.checks.load(Ordering::Relaxed) == 0 {
                return None;
            }
            Some(Duration::from_micros(
                stats.last_latency_us.load(Ordering::Relaxed),
            ))
        })
    }

    /// Marks the data plane attached (true) or going away (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// True while the data plane is attached.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Time since the process started serving.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Start time, seconds since the epoch.
    pub fn start_time_seconds(&self) -> f64 {
        self.started_wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    }

    /// Sums backend `id`'s counters over every worker.
    pub fn backend_totals(&self, id: BackendId) -> BackendTotals {
        let mut t = BackendTotals::default();
        let i = id as usize;
        for w in self.workers.load().iter() {
            let c = &w.counters;
            let get = |v: &[std::sync::atomic::AtomicU64]| {
                v.get(i).map_or(0, |a| a.load(Ordering::Relaxed))
            };
            t.packets += get(&c.backend_packets);
            t.bytes += get(&c.backend_bytes);
            t.new_flows += get(&c.backend_new_flows);
            t.active_flows += get(&c.backend_flows);
        }
        t
    }
}

// ------------------------------------------------------------------ metric families

/// (name, help, type, variable labels) of every family the collector emits.
struct Spec {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
}

const fn spec(
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        help,
        kind,
        labels,
    }
}

use MetricType::{COUNTER, GAUGE, HISTOGRAM};

const BE: &[&str] = &["service", "vip", "backend"];
const SV: &[&str] = &["service", "vip"];
const WK: &[&str] = &["worker"];
const VR: &[&str] = &["vrrp_instance"];

const BACKEND_PACKETS: usize = 0;
const BACKEND_BYTES: usize = 1;
const BACKEND_NEW_FLOWS: usize = 2;
const BACKEND_ACTIVE_FLOWS: usize = 3;
const BACKEND_HEALTHY: usize = 4;
const BACKEND_WEIGHT: usize = 5;
const BACKEND_STATE: usize = 6;
const BACKEND_CHECK: usize = 7;
const SERVICE_ACTIVE: usize = 8;
const SERVICE_HEALTHY: usize = 9;
const WORKER_RX_PACKETS: usize = 10;
const WORKER_RX_BYTES: usize = 11;
const WORKER_TX_PACKETS: usize = 12;
const WORKER_TX_BYTES: usize = 13;
const WORKER_BATCH: usize = 14;
const WORKER_RING_FULL: usize = 15;
const WORKER_KICKS: usize = 16;
const WORKER_FILL_EMPTY: usize = 17;
const WORKER_WAKEUPS: usize = 18;
const WORKER_DROPS: usize = 19;
const WORKER_NEW_FLOWS: usize = 20;
const WORKER_FLOWS: usize = 21;
const WORKER_EVICTIONS: usize = 22;
const XDP_PACKETS: usize = 23;
const XDP_IRREGULAR: usize = 24;
const VRRP_STATE: usize = 25;
const VRRP_TRANSITIONS: usize = 26;
const VRRP_ADVERTS_RX: usize = 27;
const VRRP_ADVERTS_TX: usize = 28;
const VRRP_DROPS: usize = 29;
const VRRP_PRIORITY: usize = 30;
const READY: usize = 31;
const START_TIME: usize = 32;
const BUILD_INFO: usize = 33;

static SPECS: [Spec; 34] = [
    spec("xlb_backend_packets_total", "Packets forwarded to the real server.", COUNTER, BE),
    spec("xlb_backend_bytes_total", "Bytes (Ethernet frames) forwarded to the real server.", COUNTER, BE),
    spec("xlb_backend_new_flows_total", "Flows (connections) scheduled to the real server.", COUNTER, BE),
    spec("xlb_backend_active_flows", "Flows pinned to the real server in the workers' flow tables.", GAUGE, BE),
    spec("xlb_backend_healthy", "1 when the real server's health checks pass (or it has none).", GAUGE, BE),
    spec("xlb_backend_weight", "Configured Maglev weight of the real server.", GAUGE, BE),
    spec("xlb_backend_state", "Data-plane state of the real server: 1 for the current state (up: takes new flows, drain: keeps existing flows only, down: none).", GAUGE, &["service", "vip", "backend", "state"]),
    spec("xlb_backend_check_duration_seconds", "Duration of the real server's last health probe.", GAUGE, BE),
    spec("xlb_service_active", "1 when this director serves the virtual service (VRRP MASTER or no VRRP).", GAUGE, SV),
    spec("xlb_service_healthy_backends", "Real servers of the virtual service able to take new flows.", GAUGE, SV),
    spec("xlb_worker_rx_packets_total", "Frames received from the AF_XDP RX ring.", COUNTER, WK),
    spec("xlb_worker_rx_bytes_total", "Bytes received from the AF_XDP RX ring.", COUNTER, WK),
    spec("xlb_worker_tx_packets_total", "Frames placed on the AF_XDP TX ring.", COUNTER, WK),
    spec("xlb_worker_tx_bytes_total", "Bytes placed on the AF_XDP TX ring.", COUNTER, WK),
    spec("xlb_worker_batch_size", "Frames per non-empty RX batch.", HISTOGRAM, WK),
    spec("xlb_worker_tx_ring_full_total", "Frames dropped because the TX ring was full.", COUNTER, WK),
    spec("xlb_worker_kicks_total", "sendto() kicks of the TX ring.", COUNTER, WK),
    spec("xlb_worker_fill_ring_empty_total", "Refills that found the fill ring empty.", COUNTER, WK),
    spec("xlb_worker_wakeups_total", "poll() calls and fill-ring wakeups.", COUNTER, WK),
    spec("xlb_worker_drops_total", "Frames the worker dropped, by reason.", COUNTER, &["worker", "reason"]),
    spec("xlb_worker_new_flows_total", "Flows created.", COUNTER, WK),
    spec("xlb_worker_flows", "Occupied flow-table entries.", GAUGE, WK),
    spec("xlb_worker_flow_evictions_total", "Live flows evicted to make room (flow table full).", COUNTER, WK),
    spec("xlb_xdp_packets_total", "Frames seen by the XDP program, by verdict.", COUNTER, &["verdict"]),
    spec("xlb_xdp_irregular_total", "Fragments and malformed frames the XDP program sent on without a port lookup.", COUNTER, &[]),
    spec("xlb_vrrp_state", "1 for the VRRP instance's current state.", GAUGE, &["vrrp_instance", "state"]),
    spec("xlb_vrrp_transitions_total", "VRRP state transitions.", COUNTER, VR),
    spec("xlb_vrrp_adverts_received_total", "VRRP adverts accepted.", COUNTER, VR),
    spec("xlb_vrrp_adverts_sent_total", "VRRP adverts sent.", COUNTER, VR),
    spec("xlb_vrrp_drops_total", "VRRP packets dropped, by reason.", COUNTER, &["vrrp_instance", "reason"]),
    spec("xlb_vrrp_priority", "Configured VRRP priority.", GAUGE, VR),
    spec("xlb_ready", "1 while the data plane is attached.", GAUGE, &[]),
    spec("xlb_start_time_seconds", "Start time of the daemon, seconds since the Unix epoch.", GAUGE, &[]),
    spec("xlb_build_info", "Build information (value 1).", GAUGE, &["version"]),
];

/// The XDP verdict labels, in the order of [`XdpStats`]'s verdict fields.
fn xdp_verdicts(s: &XdpStats) -> [(&'static str, u64); 7] {
    [
        ("redirected", s.redirected),
        ("passed", s.passed),
        ("no_socket", s.no_socket),
        ("inactive", s.inactive),
        ("no_service", s.no_service),
        ("dropped_stale", s.dropped_stale),
        ("dropped_nd_stale", s.dropped_nd_stale),
    ]
}

/// Reads one counter of a [`VrrpCounters`].
type VrrpGetter = fn(&VrrpCounters) -> u64;

const VRRP_DROP_REASONS: [(&str, VrrpGetter); 9] = [
    ("bad_ttl", |c| VrrpCounters::get(&c.bad_ttl)),
    ("truncated", |c| VrrpCounters::get(&c.truncated)),
    ("bad_version", |c| VrrpCounters::get(&c.bad_version)),
    ("bad_type", |c| VrrpCounters::get(&c.bad_type)),
    ("bad_checksum", |c| VrrpCounters::get(&c.bad_checksum)),
    ("wrong_vrid", |c| VrrpCounters::get(&c.wrong_vrid)),
    ("auth_mismatch", |c| VrrpCounters::get(&c.auth_mismatch)),
    ("interval_mismatch", |c| {
        VrrpCounters::get(&c.interval_mismatch)
    }),
    ("address_mismatch", |c| {
        VrrpCounters::get(&c.address_mismatch)
    }),
];

/// Label value of a backend state.
pub fn state_name(s: BackendState) -> &'static str {
    match s {
        BackendState::Up => "up",
        BackendState::Drain => "drain",
        BackendState::Down => "down",
    }
}

/// Families under construction, indexed like [`SPECS`].
struct Out(Vec<MetricFamily>);

impl Out {
    fn new() -> Self {
        Out(SPECS
            .iter()
            .map(|s| {
                let mut mf = MetricFamily::default();
                mf.set_name(s.name.to_owned());
                mf.set_help(s.help.to_owned());
                mf.set_field_type(s.kind);
                mf
            })
            .collect())
    }

    fn metric(labels: &[&str], values: &[&str]) -> Metric {
        let mut m = Metric::default();
        m.set_label(
            labels
                .iter()
                .zip(values)
                .map(|(n, v)| {
                    let mut p = LabelPair::default();
                    p.set_name((*n).to_owned());
                    p.set_value((*v).to_owned());
                    p
                })
                .collect(),
        );
        m
    }

    /// Adds a counter or gauge sample (by the family's type).
    fn add(&mut self, fam: usize, values: &[&str], v: f64) {
        debug_assert_eq!(values.len(), SPECS[fam].labels.len());
        let mut m = Self::metric(SPECS[fam].labels, values);
        if SPECS[fam].kind == COUNTER {
            let mut c = Counter::default();
            c.set_value(v);
            m.set_counter(c);
        } else {
            let mut g = Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
        }
        self.0[fam].mut_metric().push(m);
    }

    fn add_histogram(&mut self, fam: usize, values: &[&str], h: Histogram) {
        let mut m = Self::metric(SPECS[fam].labels, values);
        m.set_histogram(h);
        self.0[fam].mut_metric().push(m);
    }
}

/// Batch-size histogram in Prometheus form: bucket `i` of [`WorkerStats::batch_hist`]
/// holds batches of `2^i ..= 2^(i+1)-1` frames, so its upper bound is `2^(i+1)-1`; the last
/// is open-ended (+Inf). The sum of batch sizes is the frames received.
pub fn batch_histogram(hist: &[u64; BATCH_BUCKETS], batches: u64, frames: u64) -> Histogram {
    let mut h = Histogram::default();
    let mut cum = 0u64;
    let mut buckets = Vec::with_capacity(BATCH_BUCKETS);
    for (i, n) in hist.iter().enumerate().take(BATCH_BUCKETS - 1) {
        cum += n;
        let mut b = Bucket::default();
        b.set_upper_bound(((1u64 << (i + 1)) - 1) as f64);
        b.set_cumulative_count(cum);
        buckets.push(b);
    }
    h.set_bucket(buckets);
    h.set_sample_count(batches);
    h.set_sample_sum(frames as f64);
    h
}

/// The collector of everything xlb exports besides the reload counters.
pub struct XlbCollector {
    sources: Arc<Sources>,
    descs: Vec<Desc>,
}

impl XlbCollector {
    /// A collector over `sources`.
    pub fn new(sources: Arc<Sources>) -> Result<Self, MetricsError> {
        let mut descs = Vec::with_capacity(SPECS.len());
        for s in &SPECS {
            descs.push(Desc::new(
                s.name.to_owned(),
                s.help.to_owned(),
                s.labels.iter().map(|l| (*l).to_owned()).collect(),
                HashMap::new(),
            )?);
        }
        Ok(XlbCollector { sources, descs })
    }

    fn collect_backends(&self, out: &mut Out) {
        let view = self.sources.view();
        for svc in &view.services {
            let vip = svc.vip.to_string();
            out.add(
                SERVICE_ACTIVE,
                &[&svc.name, &vip],
                f64::from(u8::from(svc.active)),
            );
            let usable = svc
                .backends
                .iter()
                .filter(|b| !b.sorry && b.state == BackendState::Up && b.mac_resolved)
                .count();
            out.add(SERVICE_HEALTHY, &[&svc.name, &vip], usable as f64);
            for b in &svc.backends {
                let addr = b.address.to_string();
                let l = [svc.name.as_str(), vip.as_str(), addr.as_str()];
                let t = self.sources.backend_totals(b.id);
                out.add(BACKEND_PACKETS, &l, t.packets as f64);
                out.add(BACKEND_BYTES, &l, t.bytes as f64);
                out.add(BACKEND_NEW_FLOWS, &l, t.new_flows as f64);
                out.add(BACKEND_ACTIVE_FLOWS, &l, t.active_flows as f64);
                out.add(BACKEND_HEALTHY, &l, f64::from(u8::from(b.healthy)));
                out.add(BACKEND_WEIGHT, &l, f64::from(b.weight));
                for s in [BackendState::Up, BackendState::Drain, BackendState::Down] {
                    let v = f64::from(u8::from(b.state == s));
                    out.add(BACKEND_STATE, &[l[0], l[1], l[2], state_name(s)], v);
                }
                if let Some(d) = self.sources.check_latency(b.id) {
                    out.add(BACKEND_CHECK, &l, d.as_secs_f64());
                }
            }
        }
        for v in &view.vrrp {
            let n = [v.name.as_str()];
            for s in [
                VrrpState::Initialize,
                VrrpState::Backup,
                VrrpState::Master,
                VrrpState::Fault,
            ] {
                let on = f64::from(u8::from(v.state == s));
                out.add(VRRP_STATE, &[&v.name, s.as_str()], on);
            }
            let c = &v.counters;
            out.add(
                VRRP_TRANSITIONS,
                &n,
                VrrpCounters::get(&c.transitions) as f64,
            );
            out.add(VRRP_ADVERTS_RX, &n, VrrpCounters::get(&c.adverts_rx) as f64);
            out.add(VRRP_ADVERTS_TX, &n, VrrpCounters::get(&c.adverts_tx) as f64);
            for (reason, get) in VRRP_DROP_REASONS {
                out.add(VRRP_DROPS, &[&v.name, reason], get(c) as f64);
            }
            out.add(VRRP_PRIORITY, &n, f64::from(v.priority));
        }
    }

    fn collect_workers(&self, out: &mut Out) {
        for w in self.sources.workers().iter() {
            let q = w.queue.to_string();
            let l = [q.as_str()];
            let s = w.stats.snapshot();
            out.add(WORKER_RX_PACKETS, &l, s.rx_packets as f64);
            out.add(WORKER_RX_BYTES, &l, s.rx_bytes as f64);
            out.add(WORKER_TX_PACKETS, &l, s.tx_packets as f64);
            out.add(WORKER_TX_BYTES, &l, s.tx_bytes as f64);
            out.add_histogram(
                WORKER_BATCH,
                &l,
                batch_histogram(&s.batch_hist, s.batches, s.rx_packets),
            );
            out.add(WORKER_RING_FULL, &l, s.ring_full_tx as f64);
            out.add(WORKER_KICKS, &l, s.kicks as f64);
            out.add(WORKER_FILL_EMPTY, &l, s.fill_ring_empty as f64);
            out.add(WORKER_WAKEUPS, &l, s.wakeups as f64);
            let c = &w.counters;
            let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
            for r in DropReason::ALL {
                out.add(WORKER_DROPS, &[&q, r.as_str()], get(&c.drops[r as usize]));
            }
            out.add(WORKER_DROPS, &[&q, "not_for_service"], get(&c.unexpected));
            out.add(WORKER_NEW_FLOWS, &l, get(&c.new_flows));
            out.add(WORKER_FLOWS, &l, get(&c.flows));
            out.add(WORKER_EVICTIONS, &l, get(&c.evictions));
        }
        if let Some(x) = self.sources.xdp() {
            for (verdict, n) in xdp_verdicts(&x) {
                out.add(XDP_PACKETS, &[verdict], n as f64);
            }
            out.add(XDP_IRREGULAR, &[], x.irregular as f64);
        }
    }
}

impl Collector for XlbCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Out::new();
        self.collect_backends(&mut out);
        self.collect_workers(&mut out);
        out.add(READY, &[], f64::from(u8::from(self.sources.ready())));
        out.add(START_TIME, &[], self.sources.start_time_seconds());
        out.add(BUILD_INFO, &[env!("CARGO_PKG_VERSION")], 1.0);
        out.0
    }
}

/// Outcome label values of `xlb_config_reloads_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    /// Applied.
    Applied,
    /// The new file is invalid (the running config stays).
    Invalid,
    /// The new file changes keys that need a restart (the running config stays).
    Refused,
}

impl ReloadResult {
    fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Applied => "applied",
            ReloadResult::Invalid => "invalid",
            ReloadResult::Refused => "refused",
        }
    }
}

/// The registry and the few control-plane metrics that are ordinary Prometheus counters
/// (touched on reloads only, never per packet).
#[derive(Clone)]
pub struct Metrics {
    /// The one registry of the process.
    pub registry: Registry,
    reloads: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Creates the registry with the collector over `sources` and the reload counters.
    pub fn new(sources: Arc<Sources>) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        registry.register(Box::new(XlbCollector::new(sources)?))?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "xlb_config_reloads_total",
                "Configuration reloads (SIGHUP or xlb reload), by result.",
            ),
            &["result"],
        )?;
        for r in [
            ReloadResult::Applied,
            ReloadResult::Invalid,
            ReloadResult::Refused,
        ] {
            reloads.with_label_values(&[r.as_str()]);
        }
        registry.register(Box::new(reloads.clone()))?;
        Ok(Metrics { registry, reloads })
    }

    /// Counts one reload.
    pub fn reloaded(&self, r: ReloadResult) {
        self.reloads.with_label_values(&[r.as_str()]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a family the encoder rejects is a bug
        // in this module, reported in the body rather than by a panic.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# encoding error: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The HTTP endpoint on its own thread.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Binds the metrics listen address (done early, so a taken port fails the start cleanly).
pub fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })
}

/// One response: (status, content type, body).
pub fn respond(path: &str, metrics: &Metrics, sources: &Sources) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path.split('?').next().unwrap_or("") {
        "/metrics" => (200, prometheus::TEXT_FORMAT, metrics.render()),
        "/healthz" => (200, TEXT, "ok\n".to_owned()),
        "/readyz" if sources.ready() => (200, TEXT, "ready\n".to_owned()),
        "/readyz" => (503, TEXT, "data plane not attached\n".to_owned()),
        "/" => (
            200,
            TEXT,
            "xlb: /metrics (Prometheus), /healthz, /readyz\n".to_owned(),
        ),
        _ => (404, TEXT, "not found\n".to_owned()),
    }
}

impl MetricsServer {
    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` from a new thread.
    pub fn start(
        listener: TcpListener,
        metrics: Metrics,
        sources: Arc<Sources>,
    ) -> Result<Self, MetricsError> {
        let addr = listener
            .local_addr()
            .map_err(|e| MetricsError::Server(e.to_string()))?;
        let server = Arc::new(
            tiny_http::Server::from_listener(listener, None)
                .map_err(|e| MetricsError::Server(e.to_string()))?,
        );
        let srv = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("xlb-metrics".into())
            .spawn(move || {
                for req in srv.incoming_requests() {
                    let (code, ctype, body) = if *req.method() == tiny_http::Method::Get
                        || *req.method() == tiny_http::Method::Head
                    {
                        respond(req.url(), &metrics, &sources)
                    } else {
                        (405, "text/plain", "method not allowed\n".to_owned())
                    };
                    let mut resp = tiny_http::Response::from_string(body).with_status_code(code);
                    if let Ok(h) = tiny_http::Header::from_bytes("Content-Type", ctype) {
                        resp = resp.with_header(h);
                    }
                    if let Err(e) = req.respond(resp) {
                        tracing::debug!("metrics client went away: {e}");
                    }
                }
            })
            .map_err(|e| MetricsError::Server(e.to_string()))?;
        Ok(MetricsServer {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The address served.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops serving and joins the thread.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn bump(a: &std::sync::atomic::AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    fn sources_with_two_workers() -> Arc<Sources> {
        let s = Arc::new(Sources::default());
        let mut ws = Vec::new();
        for q in 0..2u32 {
            let w = WorkerSource {
                queue: q,
                stats: Arc::new(WorkerStats::default()),
                counters: Arc::new(ForwardCounters::default()),
            };
            bump(&w.counters.backend_packets[3], 10 + u64::from(q));
            bump(&w.counters.backend_bytes[3], 1000);
            bump(&w.counters.backend_new_flows[3], 2);
            bump(&w.counters.backend_flows[3], 1);
            bump(&w.counters.drops[DropReason::NoMac as usize], 4);
            bump(&w.stats.rx_packets, 7);
            bump(&w.stats.batches, 3);
            bump(&w.stats.batch_hist[0], 1);
            bump(&w.stats.batch_hist[1], 2);
            ws.push(w);
        }
        s.set_workers(ws);
        s.publish_view(View {
            generation: 1,
            services: vec![ServiceView {
                name: "web".into(),
                vip: "10.0.0.1".parse().unwrap(),
                protocol: Protocol::Tcp,
                ports: vec![80],
                vrrp: None,
                active: true,
                backends: vec![BackendView {
                    id: 3,
                    address: "10.0.0.11".parse().unwrap(),
                    weight: 5,
                    healthy: true,
                    state: BackendState::Up,
                    mac_resolved: true,
                    sorry: false,
                }],
            }],
            vrrp: vec![],
            reloads: 0,
        });
        s
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{text}"))
    }

    #[test]
    fn scrape_sums_per_worker_counters() {
        let s = sources_with_two_workers();
        let m = Metrics::new(Arc::clone(&s)).unwrap();
        s.record_check(3, Duration::from_millis(12));
        let text = m.render();
        let be = r#"{service="web",vip="10.0.0.1",backend="10.0.0.11"}"#;
        assert_eq!(
            line(&text, &format!("xlb_backend_packets_total{be}")),
            format!("xlb_backend_packets_total{be} 21")
        );
        assert!(line(&text, &format!("xlb_backend_bytes_total{be}")).ends_with(" 2000"));
        assert!(line(&text, &format!("xlb_backend_new_flows_total{be}")).ends_with(" 4"));
        assert!(line(&text, &format!("xlb_backend_active_flows{be}")).ends_with(" 2"));
        assert!(line(&text, &format!("xlb_backend_weight{be}")).ends_with(" 5"));
        assert!(
            line(&text, &format!("xlb_backend_check_duration_seconds{be}")).ends_with(" 0.012")
        );
        assert!(line(
            &text,
            r#"xlb_backend_state{service="web",vip="10.0.0.1",backend="10.0.0.11",state="up"}"#
        )
        .ends_with(" 1"));
        assert!(line(
            &text,
            r#"xlb_backend_state{service="web",vip="10.0.0.1",backend="10.0.0.11",state="down"}"#
        )
        .ends_with(" 0"));
        assert!(line(
            &text,
            r#"xlb_service_healthy_backends{service="web",vip="10.0.0.1"}"#
        )
        .ends_with(" 1"));
        assert!(line(
            &text,
            r#"xlb_worker_drops_total{worker="1",reason="no_mac"}"#
        )
        .ends_with(" 4"));
        assert!(line(&text, r#"xlb_worker_rx_packets_total{worker="0"}"#).ends_with(" 7"));
        assert!(line(&text, r#"xlb_worker_batch_size_bucket{worker="0",le="1"}"#).ends_with(" 1"));
        assert!(line(&text, r#"xlb_worker_batch_size_bucket{worker="0",le="3"}"#).ends_with(" 3"));
        assert!(line(
            &text,
            r#"xlb_worker_batch_size_bucket{worker="0",le="+Inf"}"#
        )
        .ends_with(" 3"));
        assert!(line(&text, r#"xlb_worker_batch_size_sum{worker="0"}"#).ends_with(" 7"));
        assert!(line(&text, "xlb_build_info{").ends_with(" 1"));
        assert!(line(&text, r#"xlb_config_reloads_total{result="applied"}"#).ends_with(" 0"));
        m.reloaded(ReloadResult::Applied);
        assert!(line(&m.render(), r#"xlb_config_reloads_total{result="applied"}"#).ends_with(" 1"));
        // No XDP sample yet: no XDP family rather than made-up zeros.
        assert!(!text.contains("xlb_xdp_packets_total{"));
        s.set_xdp(XdpStats {
            redirected: 9,
            ..XdpStats::default()
        });
        assert!(line(
            &m.render(),
            r#"xlb_xdp_packets_total{verdict="redirected"}"#
        )
        .ends_with(" 9"));
    }

    #[test]
    fn every_family_follows_the_naming_rules() {
        for s in &SPECS {
            assert!(s.name.starts_with("xlb_"), "{}", s.name);
            assert_eq!(s.kind == COUNTER, s.name.ends_with("_total"), "{}", s.name);
            assert!(!s.labels.contains(&"instance"), "{}", s.name);
        }
    }

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn http_server_serves_metrics_healthz_and_readyz() {
        let s = sources_with_two_workers();
        let m = Metrics::new(Arc::clone(&s)).unwrap();
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let srv = MetricsServer::start(l, m, Arc::clone(&s)).unwrap();
        let a = srv.local_addr();
        assert!(get(a, "/healthz").starts_with("HTTP/1.0 200"));
        assert!(get(a, "/readyz").starts_with("HTTP/1.0 503"));
        s.set_ready(true);
        assert!(get(a, "/readyz").starts_with("HTTP/1.0 200"));
        let body = get(a, "/metrics");
        assert!(body.starts_with("HTTP/1.0 200"), "{body}");
        assert!(body.contains("xlb_backend_packets_total{"));
        assert!(get(a, "/nope").starts_with("HTTP/1.0 404"));
        srv.stop();
    }

    #[test]
    fn binding_a_taken_port_is_an_error() {
        let l = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = bind(l.local_addr().unwrap()).unwrap_err();
        assert!(matches!(e, MetricsError::Bind { .. }), "{e}");
    }
}
