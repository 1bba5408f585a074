//! Root tests of the AF_XDP socket wrapper and the worker ring loop over a veth pair.
//!
//! In a fresh namespace per test, `xa` <-> `xb`. The worker binds `xa` queue 0 (libxdp's default
//! program), a generator binds `xb` queue 0 with the same `Xsk` wrapper. The generator sends
//! numbered frames to `xa`; the worker's handler reflects even-numbered ones (swapping the
//! MACs) and drops odd ones; the generator counts the reflections that come back on `xb`.
//! Asserts that the worker saw each frame once, that tx + dropped == rx, that every
//! reflected frame arrived (or is counted in a kernel drop counter), that reflections are
//! well-formed, and that at stop every UMEM frame is accounted for on both sockets. A second
//! test floods a worker whose TX ring is smaller than a batch, so the short-reservation and
//! fill-ring-empty paths run; a third checks the bind without a libxdp program.

mod xsk_util;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use xlb::dataplane::worker::{run_worker, Action, FrameHandler, StatsSnapshot, WorkerStats};
use xlb::dataplane::xsk::{BindMode, FrameAccounting, KernelStats, ProgramMode, Xsk, XskConfig};
use xsk_util::{enter_netns, exec_in, is_root, Netns};

const TARGET: u64 = 1_000_000;
const TIME_LIMIT: Duration = Duration::from_secs(60);
const ETHERTYPE: u16 = 0x88b5; // IEEE local experimental
const MAGIC: &[u8; 4] = b"XLBT";
const FRAME_LEN: usize = 60;
/// Frames the generator keeps in flight beyond what the worker has received: below the
/// worker's fill capacity (half its 4096 frames), so the worker is not flooded.
const WINDOW: u64 = 1024;

/// Parses a test frame: (dst, src, seq).
fn parse(frame: &[u8]) -> Option<([u8; 6], [u8; 6], u64)> {
    if frame.len() < 26 || frame[12..14] != ETHERTYPE.to_be_bytes() || &frame[14..18] != MAGIC {
        return None;
    }
    let dst: [u8; 6] = frame[0..6].try_into().ok()?;
    let src: [u8; 6] = frame[6..12].try_into().ok()?;
    let seq = u64::from_be_bytes(frame[18..26].try_into().ok()?);
    Some((dst, src, seq))
}

/// Reflects even-numbered test frames, drops odd ones and anything else.
#[derive(Default)]
struct Reflector {
    reflect_all: bool,
    calls: u64,
    tx: u64,
    odd: u64,
    foreign: u64,
    batches: u64,
}

impl FrameHandler for Reflector {
    fn begin_batch(&mut self, _now_ms: u64) {
        self.batches += 1;
    }

    fn handle(&mut self, frame: &mut [u8]) -> Action {
        self.calls += 1;
        match parse(frame) {
            Some((_, _, seq)) if self.reflect_all || seq % 2 == 0 => {
                let mut dst = [0u8; 6];
                dst.copy_from_slice(&frame[0..6]);
                frame.copy_within(6..12, 0);
                frame[6..12].copy_from_slice(&dst);
                self.tx += 1;
                Action::Tx
            }
            Some(_) => {
                self.odd += 1;
                Action::Drop
            }
            None => {
                self.foreign += 1;
                Action::Drop
            }
        }
    }
}

struct WorkerResult {
    acct: FrameAccounting,
    handler: Reflector,
    kernel: KernelStats,
    zero_copy: bool,
}

struct GenResult {
    sent: u64,
    reflected: u64,
    bad_reflections: u64,
    kernel: KernelStats,
    acct: FrameAccounting,
    send_secs: f64,
}

fn cfg() -> XskConfig {
    XskConfig {
        frames: 4096,
        frame_size: 2048,
        batch_size: 64,
        bind_mode: BindMode::TryZeroCopy,
        ..XskConfig::default()
    }
}

fn write_frame(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u64) -> usize {
    if buf.len() < FRAME_LEN {
        return 0;
    }
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    buf[14..18].copy_from_slice(MAGIC);
    buf[18..26].copy_from_slice(&seq.to_be_bytes());
    buf[26..FRAME_LEN].fill(0);
    FRAME_LEN
}

/// The generator: sends numbered frames from `xb` until the worker has received `target`
/// frames (or the time limit), keeping at most `window` in flight (None: as fast as it
/// can), then collects reflections until they stop coming.
fn generator(ns: &str, worker: &WorkerStats, sc: Scenario, macs: ([u8; 6], [u8; 6])) -> GenResult {
    let (mac_a, mac_b) = macs;
    enter_netns(ns);
    let mut xsk = Xsk::open("xb", 0, &cfg(), ProgramMode::LibxdpDefault).expect("open xb");
    let mut seq = 0u64;
    let mut reflected = 0u64;
    let mut bad = 0u64;
    let rx_one = |xsk: &mut Xsk, reflected: &mut u64, bad: &mut u64| {
        xsk.recycle_completions();
        if xsk.receive(64) > 0 {
            xsk.handle_rx(|f| {
                match parse(f) {
                    Some((d, s, q))
                        if d == mac_b && s == mac_a && (sc.reflect_all || q % 2 == 0) =>
                    {
                        *reflected += 1
                    }
                    _ => *bad += 1,
                }
                Action::Drop
            });
        }
        xsk.refill();
    };
    let start = Instant::now();
    let mut last_rx = 0;
    let mut last_progress = Instant::now();
    // Frames written off as lost before the worker (a kernel drop): without this, a lost
    // frame would hold the window shut for good.
    let mut written_off = 0u64;
    while worker.rx_packets.load(Relaxed) < sc.target && start.elapsed() < TIME_LIMIT {
        rx_one(&mut xsk, &mut reflected, &mut bad);
        let wrx = worker.rx_packets.load(Relaxed);
        if wrx != last_rx {
            last_rx = wrx;
            last_progress = Instant::now();
        }
        let mut inflight = seq.saturating_sub(wrx + written_off);
        if inflight > 0 && last_progress.elapsed() > Duration::from_millis(200) {
            written_off += inflight;
            inflight = 0;
            last_progress = Instant::now();
        }
        let room = sc.window.map_or(64, |w| w.saturating_sub(inflight).min(64));
        if room > 0 {
            let base = seq;
            let n = xsk.transmit_with(room as usize, |i, buf| {
                write_frame(buf, mac_a, mac_b, base + i as u64)
            });
            seq += n as u64;
        }
        xsk.flush_tx(64).expect("kick");
    }
    let send_secs = start.elapsed().as_secs_f64();
    // Drain: our TX, then reflections until the count stops moving for 300 ms.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = (u64::MAX, Instant::now());
    while Instant::now() < deadline {
        xsk.flush_tx(64).expect("kick");
        rx_one(&mut xsk, &mut reflected, &mut bad);
        let now = reflected + bad;
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_millis(300) && xsk.tx_outstanding() == 0 {
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    let kernel = xsk.kernel_stats().expect("xdp stats");
    GenResult {
        sent: seq,
        reflected,
        bad_reflections: bad,
        kernel,
        acct: xsk.accounting(),
        send_secs,
    }
}

#[derive(Clone, Copy)]
struct Scenario {
    worker_cfg: XskConfig,
    reflect_all: bool,
    target: u64,
    window: Option<u64>,
}

struct Outcome {
    s: StatsSnapshot,
    w: WorkerResult,
    g: GenResult,
    xa_tx_dropped: u64,
    xb_tx_dropped: u64,
}

/// A namespace with the veth pair `xa` <-> `xb`, up, IPv6 off (no stray ND frames).
fn lab(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    ns.exec(&[
        "ip", "link", "add", "xa", "type", "veth", "peer", "name", "xb",
    ]);
    for dev in ["xa", "xb"] {
        // Raw L2 frames carry no checksums, but keep the lab's rule: no TX offload.
        ns.exec(&["ethtool", "-K", dev, "tx", "off"]);
        ns.exec(&["ip", "link", "set", dev, "up"]);
    }
    ns
}

/// Runs a worker on `xa` and the generator on `xb` until the generator is done, then
/// stops the worker.
fn run_scenario(tag: &str, sc: Scenario) -> Outcome {
    let ns = lab(tag);
    let macs = (ns.mac("xa"), ns.mac("xb"));
    let stats = Arc::new(WorkerStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let worker = {
        let (ns, stats, stop) = (ns.name.clone(), stats.clone(), stop.clone());
        thread::spawn(move || {
            enter_netns(&ns);
            let opened = Xsk::open("xa", 0, &sc.worker_cfg, ProgramMode::LibxdpDefault);
            let mut xsk = match opened {
                Ok(x) => {
                    ready_tx.send(Ok(())).unwrap();
                    x
                }
                Err(e) => {
                    ready_tx.send(Err(e.to_string())).unwrap();
                    return None;
                }
            };
            let mut handler = Reflector {
                reflect_all: sc.reflect_all,
                ..Reflector::default()
            };
            // Not pinned: the test shares two cores with other work; pinning could trap
            // the worker on the busy one.
            let acct =
                run_worker(&mut xsk, &mut handler, &stats, &stop, None).expect("worker loop");
            Some(WorkerResult {
                acct,
                handler,
                kernel: xsk.kernel_stats().expect("xdp stats"),
                zero_copy: xsk.is_zero_copy(),
            })
        })
    };
    match ready_rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("opening the worker's AF_XDP socket on xa: {e}"),
        Err(e) => {
            stop.store(true, Relaxed);
            panic!("worker thread did not start: {e}");
        }
    }
    let gen = {
        let (ns, stats) = (ns.name.clone(), stats.clone());
        thread::spawn(move || generator(&ns, &stats, sc, macs))
    };
    let g = gen.join();
    stop.store(true, Relaxed);
    let w = worker
        .join()
        .expect("worker thread")
        .expect("worker result");
    let g = g.expect("generator thread");
    let s = stats.snapshot();
    let xa_tx_dropped = ns.stat("xa", "tx_dropped");
    let xb_tx_dropped = ns.stat("xb", "tx_dropped");

    let pps = s.rx_packets as f64 / g.send_secs;
    println!(
        "worker: rx {} tx {} dropped {} (ring_full_tx {}) batches {} kicks {} wakeups {} \
         fill_empty {} fill_short {} completions {} hist {:?} zero_copy {}",
        s.rx_packets,
        s.tx_packets,
        s.dropped,
        s.ring_full_tx,
        s.batches,
        s.kicks,
        s.wakeups,
        s.fill_ring_empty,
        s.fill_short,
        s.completions,
        s.batch_hist,
        w.zero_copy
    );
    println!(
        "generator: sent {} reflected {} bad {} in {:.2} s; {:.0} pps through the worker \
         (informational)",
        g.sent, g.reflected, g.bad_reflections, g.send_secs, pps
    );
    println!("worker kernel stats {:?}", w.kernel);
    println!("generator kernel stats {:?}", g.kernel);
    println!("veth tx_dropped xa {xa_tx_dropped} xb {xb_tx_dropped}");
    println!("worker frames {:?}", w.acct);
    println!("generator frames {:?}", g.acct);
    Outcome {
        s,
        w,
        g,
        xa_tx_dropped,
        xb_tx_dropped,
    }
}

/// Invariants that hold in every scenario.
fn check_invariants(o: &Outcome) {
    let (s, w, g) = (&o.s, &o.w, &o.g);
    // The worker's counters agree with what the handler saw.
    assert_eq!(s.rx_packets, w.handler.calls, "rx counter vs handler calls");
    assert_eq!(s.tx_packets + s.dropped, s.rx_packets, "tx + dropped == rx");
    assert_eq!(s.tx_packets + s.ring_full_tx, w.handler.tx, "Tx verdicts");
    assert_eq!(w.handler.batches, s.batches, "begin_batch once per batch");
    assert_eq!(s.batch_hist.iter().sum::<u64>(), s.batches, "histogram");
    assert_eq!(s.completions, s.tx_packets, "every TX frame completed");
    assert_eq!(w.handler.foreign, 0, "frames that are not the generator's");
    // Every frame sent reached the worker, or a kernel counter says where it went.
    assert_eq!(
        w.handler.calls + w.kernel.rx_dropped + w.kernel.rx_ring_full + o.xb_tx_dropped,
        g.sent,
        "generator frames vs worker receptions"
    );
    // Every reflection arrived at the peer, well-formed, or a kernel counter says where it
    // went.
    assert_eq!(g.bad_reflections, 0, "malformed reflections");
    assert_eq!(
        g.reflected + g.kernel.rx_dropped + g.kernel.rx_ring_full + o.xa_tx_dropped,
        s.tx_packets,
        "reflections received on xb vs worker tx"
    );
    // No frame leaked on either socket, and the rings agree with the ledgers.
    for (who, a) in [("worker", w.acct), ("generator", g.acct)] {
        assert!(
            a.is_balanced(),
            "{who}: ledger does not sum to total: {a:?}"
        );
        assert_eq!(a.tx_or_comp, 0, "{who}: TX not drained: {a:?}");
        assert_eq!(a.in_hand, 0, "{who}: frames left in hand: {a:?}");
        assert_eq!(
            a.kernel_held(),
            0,
            "{who}: rings disagree with the ledger: {a:?}"
        );
    }
}

#[test]
fn worker_reflects_a_million_frames_without_leaking_any() {
    if !is_root() {
        eprintln!("SKIP worker_reflects_a_million_frames_without_leaking_any: needs root");
        return;
    }
    let o = run_scenario(
        "xskm",
        Scenario {
            worker_cfg: cfg(),
            reflect_all: false,
            target: TARGET,
            window: Some(WINDOW),
        },
    );
    assert!(
        o.s.rx_packets >= TARGET,
        "worker received only {} frames in {:?}",
        o.s.rx_packets,
        TIME_LIMIT
    );
    check_invariants(&o);
    // Even frames reflected, odd ones dropped; with the window nothing is lost, so exactly
    // the generator's even sequence numbers come back.
    assert_eq!(o.w.handler.odd, o.s.rx_packets / 2, "odd frames dropped");
    assert_eq!(o.g.reflected, o.g.sent.div_ceil(2), "even frames reflected");
}

#[test]
fn short_tx_ring_drops_are_counted_and_no_frame_leaks() {
    if !is_root() {
        eprintln!("SKIP short_tx_ring_drops_are_counted_and_no_frame_leaks: needs root");
        return;
    }
    // TX ring of 16 < batch of 64, every frame reflected, generator floods: the worker's
    // TX reservation comes up short and its fill ring runs dry.
    let o = run_scenario(
        "xsko",
        Scenario {
            worker_cfg: XskConfig {
                tx_size: 16,
                comp_size: 16,
                ..cfg()
            },
            reflect_all: true,
            target: 200_000,
            window: None,
        },
    );
    assert!(
        o.s.rx_packets >= 200_000,
        "worker received {}",
        o.s.rx_packets
    );
    check_invariants(&o);
    assert!(o.s.ring_full_tx > 0, "the short TX ring never overflowed");
    assert_eq!(o.w.handler.odd, 0);
}

#[test]
fn own_program_mode_binds_without_loading_a_program() {
    if !is_root() {
        eprintln!("SKIP own_program_mode_binds_without_loading_a_program: needs root");
        return;
    }
    let ns = lab("xskp");
    let name = ns.name.clone();
    let (fd, dup, libxdp_fd) = thread::spawn(move || {
        enter_netns(&name);
        let own = Xsk::open("xa", 0, &cfg(), ProgramMode::OwnProgram).expect("bind xa");
        let fd = own.fd();
        let dup = Xsk::open("xa", 0, &cfg(), ProgramMode::OwnProgram).map(|_| ());
        let with_prog = Xsk::open("xb", 0, &cfg(), ProgramMode::LibxdpDefault).expect("bind xb");
        let xa = exec_in(&name, &["ip", "link", "show", "xa"]);
        let xb = exec_in(&name, &["ip", "link", "show", "xb"]);
        assert!(!xa.contains("xdp"), "OwnProgram loaded a program: {xa}");
        assert!(xb.contains("xdp"), "LibxdpDefault loaded no program: {xb}");
        (fd, dup.map_err(|e| e.to_string()), with_prog.fd())
    })
    .join()
    .expect("thread");
    assert!(fd >= 0 && libxdp_fd >= 0);
    let err = dup.expect_err("a second socket on the same queue must fail");
    assert!(err.contains("xa queue 0"), "{err}");
}

/// Counts idle wakeups and batches; drops every frame.
struct Quiet {
    idles: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
}

impl FrameHandler for Quiet {
    fn begin_batch(&mut self, _now_ms: u64) {
        self.batches.fetch_add(1, Relaxed);
    }

    fn idle(&mut self, _now_ms: u64) {
        self.idles.fetch_add(1, Relaxed);
    }

    fn handle(&mut self, _frame: &mut [u8]) -> Action {
        Action::Drop
    }
}

/// Housekeeping (flow expiry, gauges) must go on while a queue is quiet: a worker with no
/// traffic calls its handler's `idle` on each poll timeout, and never `begin_batch`.
#[test]
fn a_quiet_worker_calls_idle() {
    if !is_root() {
        eprintln!("SKIP a_quiet_worker_calls_idle: needs root");
        return;
    }
    let ns = lab("xski");
    let stop = Arc::new(AtomicBool::new(false));
    let (idles, batches) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let worker = {
        let (name, stop) = (ns.name.clone(), stop.clone());
        let mut handler = Quiet {
            idles: idles.clone(),
            batches: batches.clone(),
        };
        thread::spawn(move || {
            enter_netns(&name);
            let mut xsk = Xsk::open("xa", 0, &cfg(), ProgramMode::LibxdpDefault).expect("bind xa");
            let stats = WorkerStats::default();
            run_worker(&mut xsk, &mut handler, &stats, &stop, None).expect("worker loop")
        })
    };
    // Bounded wait for three idle calls (one per 100 ms poll timeout).
    let deadline = Instant::now() + Duration::from_secs(20);
    while idles.load(Relaxed) < 3 && Instant::now() < deadline && !worker.is_finished() {
        thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Relaxed);
    let acct = worker.join().expect("worker thread");
    assert!(
        idles.load(Relaxed) >= 3,
        "idle called {} times",
        idles.load(Relaxed)
    );
    assert_eq!(batches.load(Relaxed), 0, "no traffic, no batch");
    assert_eq!(
        acct.total,
        acct.free + acct.fill_or_rx + acct.tx_or_comp + acct.in_hand
    );
}
