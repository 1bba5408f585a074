//! The per-queue worker: the AF_XDP ring loop, generic over the per-frame decision.
//!
//! [`run_worker`] drives one [`Xsk`] in the xdpsock order (DESIGN.md §4 item 7):
//!
//! 1. recycle TX completions (into the free pool, then the fill ring);
//! 2. take a batch of up to `batch_size` frames from the RX ring;
//! 3. [`FrameHandler::begin_batch`], then [`FrameHandler::handle`] on each frame, in place;
//! 4. [`Action::Tx`] frames go to the TX ring (the received frame itself, rewritten in
//!    place: no copy); [`Action::Drop`] frames go back to the fill ring. A short TX
//!    reservation first recycles completions and kicks once; frames that still do not fit
//!    are dropped and counted in `ring_full_tx` (not kept for the next round: holding them
//!    would starve the fill ring exactly when the kernel is slow);
//! 5. kick TX with `sendto` only when the ring's `needs_wakeup` flag says so (always in copy
//!    mode, where TX moves only on a kick and at most 32 frames move per kick, so we kick
//!    until the ring is empty or stops draining);
//! 6. refill the fill ring (waking the driver if it asks);
//! 7. only when a round did nothing, `poll` for RX with a short timeout so `stop` is seen.
//!
//! [`set_thread_priority`] sets the worker thread's scheduling ([`WorkerPriority`]); the
//! daemon runs pinned workers at SCHED_FIFO 1 so the queue's NAPI poller on the same core
//! never outruns them (BENCHMARKS.md, "Data-plane tuning").
//!
//! Guarantees: no allocation and no lock in the loop; the handler sees every received
//! frame exactly once; every frame stays accounted for ([`FrameAccounting`] at stop); the
//! statistics are written only by this worker, with relaxed stores, and may be read from
//! any thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use super::xsk::FrameAccounting;
use super::xsk::{Xsk, XskError};

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send it out of the same interface (after in-place rewriting).
    Tx,
    /// Give the frame back to the kernel for reception.
    Drop,
}

/// The per-frame decision the worker calls.
pub trait FrameHandler {
    /// Called before each batch (between batches): pick up new snapshots here.
    /// `now_ms` is [`monotonic_ms`].
    fn begin_batch(&mut self, _now_ms: u64) {}

    /// Called when the worker's `poll` timed out with no traffic (about every 100 ms
    /// while its queue is quiet): housekeeping that must go on without traffic (flow
    /// expiry, gauges). Does nothing by default.
    fn idle(&mut self, _now_ms: u64) {}

    /// Decides one frame; may rewrite it in place. Must not panic on any bytes.
    fn handle(&mut self, frame: &mut [u8]) -> Action;
}

/// Milliseconds on a monotonic clock shared by all workers (process-wide epoch).
pub fn monotonic_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Batch-size histogram buckets: bucket `i` counts batches of `2^i ..= 2^(i+1)-1` frames;
/// the last bucket is open-ended (128 and more).
pub const BATCH_BUCKETS: usize = 8;

/// Counters of one worker. Only that worker writes them (relaxed load + store, no
/// read-modify-write); other threads read them with relaxed loads.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct WorkerStats {
    /// Frames received from the RX ring.
    pub rx_packets: AtomicU64,
    /// Their bytes.
    pub rx_bytes: AtomicU64,
    /// Frames placed on the TX ring.
    pub tx_packets: AtomicU64,
    /// Their bytes.
    pub tx_bytes: AtomicU64,
    /// Frames not transmitted: handler drops plus `ring_full_tx`.
    pub dropped: AtomicU64,
    /// Frames dropped because the TX ring was full.
    pub ring_full_tx: AtomicU64,
    /// Refills that found the fill ring empty (the kernel may have had no frame to
    /// receive into).
    pub fill_ring_empty: AtomicU64,
    /// Refills that could not top the fill ring up for lack of free frames.
    pub fill_short: AtomicU64,
    /// TX completions recycled.
    pub completions: AtomicU64,
    /// `sendto` kicks.
    pub kicks: AtomicU64,
    /// `poll` calls and fill-ring wakeups.
    pub wakeups: AtomicU64,
    /// Non-empty batches.
    pub batches: AtomicU64,
    /// Batch-size histogram, see [`BATCH_BUCKETS`].
    pub batch_hist: [AtomicU64; BATCH_BUCKETS],
}

#[inline]
fn bump(c: &AtomicU64, n: u64) {
    if n != 0 {
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

/// The histogram bucket of a batch of `n` (> 0) frames.
pub fn batch_bucket(n: usize) -> usize {
    let log2 = (usize::BITS - 1 - n.max(1).leading_zeros()) as usize;
    log2.min(BATCH_BUCKETS - 1)
}

/// A plain copy of [`WorkerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// See [`WorkerStats::rx_packets`].
    pub rx_packets: u64,
    /// See [`WorkerStats::rx_bytes`].
    pub rx_bytes: u64,
    /// See [`WorkerStats::tx_packets`].
    pub tx_packets: u64,
    /// See [`WorkerStats::tx_bytes`].
    pub tx_bytes: u64,
    /// See [`WorkerStats::dropped`].
    pub dropped: u64,
    /// See [`WorkerStats::ring_full_tx`].
    pub ring_full_tx: u64,
    /// See [`WorkerStats::fill_ring_empty`].
    pub fill_ring_empty: u64,
    /// See [`WorkerStats::fill_short`].
    pub fill_short: u64,
    /// See [`WorkerStats::completions`].
    pub completions: u64,
    /// See [`WorkerStats::kicks`].
    pub kicks: u64,
    /// See [`WorkerStats::wakeups`].
    pub wakeups: u64,
    /// See [`WorkerStats::batches`].
    pub batches: u64,
    /// See [`WorkerStats::batch_hist`].
    pub batch_hist: [u64; BATCH_BUCKETS],
}

impl WorkerStats {
    /// Reads every counter (relaxed; fields may be from slightly different moments).
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut hist = [0; BATCH_BUCKETS];
        for (h, c) in hist.iter_mut().zip(&self.batch_hist) {
            *h = c.load(Relaxed);
        }
        StatsSnapshot {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            ring_full_tx: self.ring_full_tx.load(Relaxed),
            fill_ring_empty: self.fill_ring_empty.load(Relaxed),
            fill_short: self.fill_short.load(Relaxed),
            completions: self.completions.load(Relaxed),
            kicks: self.kicks.load(Relaxed),
            wakeups: self.wakeups.load(Relaxed),
            batches: self.batches.load(Relaxed),
            batch_hist: hist,
        }
    }
}

/// Poll timeout when idle with no TX in flight: bounds how long `stop` goes unseen.
const IDLE_POLL_MS: i32 = 100;
/// Poll timeout when idle with TX frames still awaiting completion.
const IDLE_POLL_TX_MS: i32 = 1;
/// Upper bound of kicks per round (copy mode moves at most 32 frames per kick).
const MAX_KICKS_PER_ROUND: u32 = 64;
/// How long to wait at stop for TX completions before reporting.
const DRAIN: Duration = Duration::from_secs(1);

/// How a worker thread is scheduled relative to the rest of its core (in particular the
/// queue's NAPI poller, which fills the RX ring and, when it outruns the worker, burns CPU
/// on frames it must then drop at the redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerPriority {
    /// Leave the thread as it is.
    #[default]
    Inherit,
    /// A nice value (-20..=19) for this thread (SCHED_OTHER).
    Nice(i32),
    /// SCHED_FIFO at this priority (1..=99). The worker sleeps in `poll` whenever its RX
    /// ring is empty, so the NAPI poller on the same core still runs.
    Fifo(i32),
}

impl std::str::FromStr for WorkerPriority {
    type Err = String;

    /// `inherit`, `nice:N` or `fifo:N`.
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str, lo: i32, hi: i32| match v.parse::<i32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            _ => Err(format!("{s:?}: expected a number in {lo}..={hi}")),
        };
        match s.split_once(':') {
            None if s == "inherit" => Ok(WorkerPriority::Inherit),
            Some(("nice", v)) => num(v, -20, 19).map(WorkerPriority::Nice),
            Some(("fifo", v)) => num(v, 1, 99).map(WorkerPriority::Fifo),
            _ => Err(format!("{s:?}: expected inherit, nice:N or fifo:N")),
        }
    }
}

/// Applies `prio` to the calling thread. Errors (no CAP_SYS_NICE) are returned, not fatal.
pub fn set_thread_priority(prio: WorkerPriority) -> std::io::Result<()> {
    match prio {
        WorkerPriority::Inherit => Ok(()),
        WorkerPriority::Nice(n) => {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            // SAFETY: plain syscall on our own thread id; no memory is passed.
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, n) };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
        WorkerPriority::Fifo(p) => {
            let param = libc::sched_param { sched_priority: p };
            // SAFETY: pid 0 is the calling thread; `param` is a live sched_param.
            let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

/// CPUs the calling thread may run on (`sched_getaffinity`), ascending.
pub fn thread_affinity() -> std::io::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is a live cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Restricts the calling thread, and the threads it spawns from now on, to `cpus`.
pub fn set_thread_affinity(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; `set` is a live cpu_set_t of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Where xlb's non-worker threads (control: VRRP, health checks, reload; metrics) should
/// run: the CPUs of `allowed` (the process's affinity, e.g. from taskset or systemd's
/// CPUAffinity=) that no worker is pinned to. `None` when there is nothing to change
/// (no worker core among `allowed`) or nothing left (the workers cover every allowed CPU:
/// then control threads share cores with the workers).
pub fn control_cpus(allowed: &[usize], worker_cores: &[usize]) -> Option<Vec<usize>> {
    let rest: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !worker_cores.contains(c))
        .collect();
    (!rest.is_empty() && rest.len() < allowed.len()).then_some(rest)
}

/// Runs the ring loop on `xsk` until `stop` is set, then drains TX completions and returns
/// where every frame is. Pins the calling thread to `core` if given (a failed pin is
/// logged, not fatal).
pub fn run_worker(
    xsk: &mut Xsk,
    handler: &mut impl FrameHandler,
    stats: &WorkerStats,
    stop: &AtomicBool,
    core: Option<usize>,
) -> Result<FrameAccounting, XskError> {
    if let Some(id) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            tracing::warn!(core = id, "could not pin worker thread");
        }
    }
    let batch = xsk.batch_size();
    let fill_target = xsk.ring_sizes().rx.min(xsk.ring_sizes().fill);

    while !stop.load(Relaxed) {
        // 1. Completions back to the free pool (refilled below, after the drops).
        let completed = xsk.recycle_completions();
        bump(&stats.completions, u64::from(completed));

        // 2-4. A batch from RX, through the handler, to TX or back to the pool.
        let n = xsk.receive(batch);
        if n > 0 {
            handler.begin_batch(monotonic_ms());
            let out = xsk.handle_rx(|frame| handler.handle(frame));
            bump(&stats.rx_packets, u64::from(out.rx));
            bump(&stats.rx_bytes, out.rx_bytes);
            bump(&stats.tx_packets, u64::from(out.tx));
            bump(&stats.tx_bytes, out.tx_bytes);
            bump(&stats.dropped, u64::from(out.dropped));
            bump(&stats.ring_full_tx, u64::from(out.tx_ring_full));
            bump(&stats.kicks, u64::from(out.kicks));
            bump(&stats.completions, u64::from(out.completions));
            bump(&stats.batches, 1);
            bump(&stats.batch_hist[batch_bucket(n)], 1);
        }

        // 5. Kick TX only if the ring asks (flush_tx checks needs_wakeup per kick).
        if xsk.tx_ring_len() > 0 {
            let kicks = xsk.flush_tx(MAX_KICKS_PER_ROUND)?;
            bump(&stats.kicks, u64::from(kicks));
        }

        // 6. Refill.
        if xsk.fill_ring_len() == 0 {
            bump(&stats.fill_ring_empty, 1);
        }
        xsk.refill();
        if xsk.rx_outstanding() < fill_target && xsk.free_frames() == 0 {
            bump(&stats.fill_short, 1);
        }
        if xsk.fill_needs_wakeup() {
            bump(&stats.wakeups, 1);
            xsk.wake_rx()?;
        }

        // 7. Sleep in poll only when this round did nothing.
        if n == 0 && completed == 0 {
            let timeout = if xsk.tx_outstanding() > 0 {
                IDLE_POLL_TX_MS
            } else {
                IDLE_POLL_MS
            };
            bump(&stats.wakeups, 1);
            if !xsk.poll_rx(timeout)? {
                handler.idle(monotonic_ms());
            }
        }
    }

    // Drain: TX frames come back through the completion ring; RX frames stay with the
    // kernel (they are accounted under fill_or_rx).
    let deadline = Instant::now() + DRAIN;
    while xsk.tx_outstanding() > 0 && Instant::now() < deadline {
        let kicks = xsk.flush_tx(MAX_KICKS_PER_ROUND)?;
        bump(&stats.kicks, u64::from(kicks));
        let c = xsk.recycle_completions();
        bump(&stats.completions, u64::from(c));
        if c == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    xsk.refill();
    match xsk.kernel_stats() {
        Ok(k) => tracing::info!(?k, "AF_XDP kernel statistics at stop"),
        Err(e) => tracing::debug!(error = %e, "XDP_STATISTICS unavailable"),
    }
    Ok(xsk.accounting())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_buckets_are_log2_and_capped() {
        let cases = [
            (1, 0),
            (2, 1),
            (3, 1),
            (4, 2),
            (7, 2),
            (8, 3),
            (63, 5),
            (64, 6),
            (127, 6),
            (128, 7),
            (4096, 7),
        ];
        for (n, b) in cases {
            assert_eq!(batch_bucket(n), b, "batch of {n}");
        }
    }

    #[test]
    fn control_cpus_are_the_allowed_cpus_without_workers() {
        // Default placement on 4 CPUs: workers on 1-3, control on 0.
        assert_eq!(control_cpus(&[0, 1, 2, 3], &[1, 2, 3]), Some(vec![0]));
        // taskset -c 2,3 with workers on 3: control on 2 (never outside the mask).
        assert_eq!(control_cpus(&[2, 3], &[1, 3]), Some(vec![2]));
        // Workers on every allowed CPU: nothing left, leave the threads where they are.
        assert_eq!(control_cpus(&[1], &[1]), None);
        assert_eq!(control_cpus(&[0, 1], &[1, 0]), None);
        // No worker among the allowed CPUs: nothing to change.
        assert_eq!(control_cpus(&[0, 1], &[5]), None);
        assert_eq!(control_cpus(&[0, 1], &[]), None);
    }

    #[test]
    fn thread_affinity_round_trips() {
        let before = thread_affinity().expect("getaffinity");
        assert!(!before.is_empty());
        // In a scratch thread, so the test runner's threads keep their mask.
        let first = before[0];
        let got = std::thread::spawn(move || {
            set_thread_affinity(&[first]).expect("setaffinity");
            thread_affinity().expect("getaffinity")
        })
        .join()
        .expect("join");
        assert_eq!(got, vec![first]);
        assert_eq!(thread_affinity().expect("getaffinity"), before);
    }

    #[test]
    fn worker_priority_parses_and_rejects_out_of_range() {
        assert_eq!("inherit".parse(), Ok(WorkerPriority::Inherit));
        assert_eq!("nice:-5".parse(), Ok(WorkerPriority::Nice(-5)));
        assert_eq!("fifo:1".parse(), Ok(WorkerPriority::Fifo(1)));
        for bad in [
            "", "fifo:0", "fifo:100", "nice:20", "rr:1", "fifo:x", "nice",
        ] {
            assert!(bad.parse::<WorkerPriority>().is_err(), "{bad}");
        }
    }

    #[test]
    fn stats_are_cache_line_aligned_and_snapshot_reads_them() {
        assert_eq!(std::mem::align_of::<WorkerStats>(), 64);
        let s = WorkerStats::default();
        bump(&s.rx_packets, 5);
        bump(&s.rx_packets, 2);
        bump(&s.batch_hist[3], 1);
        let snap = s.snapshot();
        assert_eq!(snap.rx_packets, 7);
        assert_eq!(snap.batch_hist[3], 1);
        assert_eq!(snap.tx_packets, 0);
    }
}
