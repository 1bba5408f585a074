//! Performance benchmarks of the core per-packet and control-plane computations (issue 7):
//!
//! - `maglev_build`: `lb::maglev::build` for N = 100 / 1000 real servers, M = 65537, equal
//!   and mixed (1..=10) weights. Goal: N = 1000 under 1 ms.
//! - `forward`: `dataplane::forward::forward` over a batch of 64 IPv4/TCP frames against a
//!   realistic snapshot (a service of 100 real servers with an M = 65537 table built by
//!   `maglev::build`, plus a second UDP service) and a 1M-entry flow table. `warm_x64`:
//!   every flow is already in the table. `new_flows_x64`: every frame is a flow never seen
//!   before (the source address and port are rewritten from a counter before each call;
//!   the table fills up and then evicts, as in a long-running director). Goals: 30 ns and
//!   100 ns per frame (divide the batch time by 64; criterion prints elements/s too).
//!
//! `XLB_CORE_MIN=1 cargo bench --bench core_perf` skips criterion and prints the minimum
//! and median CPU time of single builds / batches (steadier on a loaded machine).
//! `XLB_BENCH_CPU_TIME=1 cargo bench --bench core_perf` measures the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of wall-clock time, for shared, loaded machines.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use etherparse::PacketBuilder;
use xlb::dataplane::forward::{forward, Verdict};
use xlb::lb::flow::{FlowTable, FlowTimeouts};
use xlb::lb::maglev;
use xlb::lb::tables::{Backend, BackendState, OnDown, Service, Snapshot, PROTO_TCP, PROTO_UDP};

#[macro_use]
mod common;
use common::thread_cpu_ns;

const M: usize = 65537;
const BATCH: usize = 64;
const CLIENT_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x10];
const DIRECTOR_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];
const VIP: [u8; 4] = [192, 168, 5, 188];
const VIP_DNS: [u8; 4] = [192, 168, 5, 189];

const TIMEOUTS: FlowTimeouts = FlowTimeouts {
    tcp_ms: 900_000,
    tcp_fin_ms: 30_000,
    udp_ms: 30_000,
};

fn backends(n: u32, mixed: bool) -> Vec<(IpAddr, u32)> {
    (0..n)
        .map(|i| {
            let w = if mixed { 1 + i % 10 } else { 1 };
            (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), w)
        })
        .collect()
}

fn bench_maglev<T: Measurement>(c: &mut Criterion<T>) {
    let mut g = c.benchmark_group("core_maglev_build");
    for n in [100u32, 1000] {
        for mixed in [false, true] {
            let b = backends(n, mixed);
            let name = format!("n{n}_m{M}_{}", if mixed { "weights1to10" } else { "equal" });
            g.bench_function(name, |bench| {
                bench.iter(|| maglev::build(black_box(&b), M).unwrap())
            });
        }
    }
    g.finish();
}

/// Two services: TCP VIP:80 with 100 real servers (ids 0..100), UDP VIP_DNS:53 with 4
/// (ids 100..104).
fn snapshot() -> Snapshot {
    let web = backends(100, false);
    let dns: Vec<(IpAddr, u32)> = (0..4)
        .map(|i| (IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i)), 1))
        .collect();
    let web_table = maglev::build(&web, M).unwrap();
    let dns_table: Vec<u32> = maglev::build(&dns, M)
        .unwrap()
        .into_iter()
        .map(|i| i + 100)
        .collect();
    let mut all = Vec::new();
    for (i, (addr, _)) in web.iter().enumerate() {
        all.push(Backend {
            addr: *addr,
            mac: Some([0x02, 0x98, 0, 0, (i >> 8) as u8, i as u8]),
            state: BackendState::Up,
            service: 0,
        });
    }
    for (i, (addr, _)) in dns.iter().enumerate() {
        all.push(Backend {
            addr: *addr,
            mac: Some([0x02, 0x97, 0, 0, 0, i as u8]),
            state: BackendState::Up,
            service: 1,
        });
    }
    let services = vec![
        Service {
            name: "web".into(),
            vip: IpAddr::from(VIP),
            proto: PROTO_TCP,
            ports: vec![80, 443],
            maglev: web_table,
            sorry: None,
            on_down: OnDown::Reschedule,
        },
        Service {
            name: "dns".into(),
            vip: IpAddr::from(VIP_DNS),
            proto: PROTO_UDP,
            ports: vec![53],
            maglev: dns_table,
            sorry: None,
            on_down: OnDown::Reschedule,
        },
    ];
    Snapshot::new(1, DIRECTOR_MAC, services, all)
}

/// A 64-byte-class TCP ACK from client `n` (source 10.128.x.y, port from `n`) to VIP:80.
fn frame(n: u32) -> Vec<u8> {
    let src = (0x0a80_0000u32 | (n & 0xffff)).to_be_bytes();
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(src, VIP, 64)
        .tcp(1024 + (n % 60000) as u16, 80, 1000, 65535)
        .ack(1)
        .write(&mut out, &[0u8; 6])
        .unwrap();
    out
}

fn bench_forward<T: Measurement>(c: &mut Criterion<T>) {
    let snap = snapshot();
    let mut g = c.benchmark_group("core_forward");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut frames: Vec<Vec<u8>> = (0..BATCH as u32).map(|n| frame(n * 977)).collect();
    let mut flows = FlowTable::new(1 << 20, TIMEOUTS);
    // Warm the table with 64k flows, including the batch's.
    for n in 0..65536u32 {
        let mut f = frame(n);
        forward(&mut f, &snap, &mut flows, 1);
    }
    for f in frames.iter_mut() {
        assert!(matches!(
            forward(f, &snap, &mut flows, 1),
            Verdict::Tx {
                new_flow: false,
                ..
            }
        ));
    }
    g.bench_function("warm_x64", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for f in frames.iter_mut() {
                if let Verdict::Tx { backend, .. } = forward(black_box(f), &snap, &mut flows, 2) {
                    acc = acc.wrapping_add(backend);
                }
            }
            acc
        })
    });

    // All-new flows: rewrite the source address (bytes 26..30) and source port (34..36)
    // from a counter so that no 5-tuple repeats. Checksums are not verified by forward().
    let mut fresh = FlowTable::new(1 << 20, TIMEOUTS);
    let mut ctr = 0u64;
    g.bench_function("new_flows_x64", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for f in frames.iter_mut() {
                ctr += 1;
                let src = (0x0b00_0000u32 | (ctr >> 12) as u32 & 0x00ff_ffff).to_be_bytes();
                f[26..30].copy_from_slice(&src);
                f[34..36].copy_from_slice(&((ctr & 0xfff) as u16 + 1024).to_be_bytes());
                if let Verdict::Tx { backend, new_flow } =
                    forward(black_box(f), &snap, &mut fresh, 2)
                {
                    debug_assert!(new_flow);
                    acc = acc.wrapping_add(backend);
                }
            }
            acc
        })
    });
    g.finish();
}

/// `XLB_CORE_MIN=1`: no criterion; prints the minimum and median thread CPU time of
/// single runs (Maglev builds) or batches (forward), which on a loaded machine is steadier
/// than a mean.
fn min_median() {
    // `XLB_CORE_ONLY=maglev|warm|new` and `XLB_CORE_RUNS=<divisor>` make short runs for
    // callgrind (instruction counts per build / per frame).
    let only = std::env::var("XLB_CORE_ONLY").unwrap_or_default();
    let div: usize = std::env::var("XLB_CORE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    fn report(name: &str, mut v: Vec<u64>, per: u64) {
        v.sort_unstable();
        println!(
            "{name:40} min {:>9.1} ns  median {:>9.1} ns  (per {})",
            v[0] as f64 / per as f64,
            v[v.len() / 2] as f64 / per as f64,
            if per == 1 { "run" } else { "frame" }
        );
    }
    for n in [100u32, 1000] {
        for mixed in [false, true] {
            if !only.is_empty() && only != "maglev" {
                break;
            }
            let b = backends(n, mixed);
            let v: Vec<u64> = (0..300 / div)
                .map(|_| {
                    let t = thread_cpu_ns();
                    black_box(maglev::build(black_box(&b), M).unwrap());
                    thread_cpu_ns() - t
                })
                .collect();
            let kind = if mixed { "weights1to10" } else { "equal" };
            report(&format!("maglev_build n{n} {kind}"), v, 1);
        }
    }
    if only == "maglev" {
        return;
    }
    let snap = snapshot();
    let mut frames: Vec<Vec<u8>> = (0..BATCH as u32).map(|n| frame(n * 977)).collect();
    let mut flows = FlowTable::new(1 << 20, TIMEOUTS);
    for n in 0..65536u32 {
        forward(&mut frame(n), &snap, &mut flows, 1);
    }
    let v: Vec<u64> = (0..if only == "new" { 1 } else { 20_000 / div })
        .map(|_| {
            let t = thread_cpu_ns();
            for f in frames.iter_mut() {
                black_box(forward(black_box(f), &snap, &mut flows, 2));
            }
            thread_cpu_ns() - t
        })
        .collect();
    report("forward warm (batch of 64)", v, BATCH as u64);
    let mut fresh = FlowTable::new(1 << 20, TIMEOUTS);
    let mut ctr = 0u64;
    let v: Vec<u64> = (0..if only == "warm" { 1 } else { 40_000 / div })
        .map(|_| {
            let t = thread_cpu_ns();
            for f in frames.iter_mut() {
                ctr += 1;
                let src = (0x0b00_0000u32 | (ctr >> 12) as u32 & 0x00ff_ffff).to_be_bytes();
                f[26..30].copy_from_slice(&src);
                f[34..36].copy_from_slice(&((ctr & 0xfff) as u16 + 1024).to_be_bytes());
                black_box(forward(black_box(f), &snap, &mut fresh, 2));
            }
            thread_cpu_ns() - t
        })
        .collect();
    report("forward new flows (batch of 64)", v, BATCH as u64);
}

fn main() {
    if std::env::var_os("XLB_CORE_MIN").is_some() {
        min_median();
        return;
    }
    run_benches!(bench_maglev, bench_forward);
}
