//! Benchmarks of the pure forwarding core, `forward()`, per packet over batches of 64
//! frames, as a worker calls it: one TCP service on an IPv4 VIP with 3 or 100 real servers
//! (Maglev table M = 65537 built by `lb::maglev::build`), a 1M-entry flow table.
//!
//! - `warm_64flows`: the 64 flows of the batch are already in the flow table (every frame
//!   is a flow-table hit; the table's buckets stay in cache);
//! - `warm_64kflows`: 65536 live flows, batches of 64 taken in turn from them (hits whose
//!   buckets are mostly not in L1/L2, closer to a busy director);
//! - `new_flows`: every frame starts a new flow (the source address is rewritten with a
//!   counter before each batch, 64 small stores, included in the time): hash, flow-table
//!   miss, Maglev pick, insert. The 1M table fills after ~16k batches, so most of the
//!   measurement is the steady state of a full table (inserts evict the LRU way);
//! - `ipv6_warm_64flows`: the warm case on an IPv6 VIP.
//!
//! Criterion's throughput is per element = per packet: `time / 64` is ns per packet.
//! `XLB_BENCH_CPU_TIME=1 cargo bench --bench forward` measures thread CPU time instead of
//! wall-clock time (for a shared, loaded machine).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use etherparse::PacketBuilder;
use xlb::dataplane::forward::{forward, Verdict};
use xlb::lb::flow::{FlowTable, FlowTimeouts};
use xlb::lb::maglev;
use xlb::lb::tables::{Backend, BackendState, OnDown, Service, Snapshot, PROTO_TCP};

#[macro_use]
mod common;

const M: usize = 65537;
const BATCH: usize = 64;
const FLOW_CAPACITY: usize = 1 << 20;
const CLIENT_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x10];
const DIRECTOR_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];
const VIP4: [u8; 4] = [10, 99, 0, 100];
const VIP6: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];

const TIMEOUTS: FlowTimeouts = FlowTimeouts {
    tcp_ms: 900_000,
    tcp_fin_ms: 30_000,
    udp_ms: 30_000,
};

/// A snapshot as the control plane publishes it: one TCP:80 service on `vip` with `n`
/// real servers (all up, MACs known), its Maglev table built from their addresses.
fn snapshot(vip: IpAddr, n: u32) -> Snapshot {
    let addrs: Vec<IpAddr> = (0..n)
        .map(|i| match vip {
            IpAddr::V4(_) => IpAddr::from((0x0a63_1000u32 + i).to_be_bytes()),
            IpAddr::V6(_) => {
                let mut a = VIP6;
                a[12..].copy_from_slice(&(0x1000 + i).to_be_bytes());
                IpAddr::from(a)
            }
        })
        .collect();
    let members: Vec<(IpAddr, u32)> = addrs.iter().map(|a| (*a, 1)).collect();
    let table = maglev::build(&members, M).expect("prime table size");
    let backends = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Backend {
            addr: *a,
            mac: Some([0x02, 0x98, 0, 0, (i >> 8) as u8, i as u8]),
            state: BackendState::Up,
            service: 0,
        })
        .collect();
    let svc = Service {
        name: "web".into(),
        vip,
        proto: PROTO_TCP,
        ports: vec![80],
        maglev: table,
        sorry: None,
        on_down: OnDown::Reschedule,
    };
    Snapshot::new(1, DIRECTOR_MAC, vec![svc], backends)
}

/// A minimal TCP ACK frame (60 bytes for IPv4) from client number `i` to the VIP, port 80.
fn frame(vip: IpAddr, i: u32) -> Vec<u8> {
    let sport = 1024 + (i % 60000) as u16;
    let b = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC);
    let b = match vip {
        IpAddr::V4(v) => b.ipv4((0x0a00_0000u32 + i).to_be_bytes(), v.octets(), 64),
        IpAddr::V6(v) => {
            let mut src = [0u8; 16];
            src[0] = 0xfd;
            src[12..].copy_from_slice(&i.to_be_bytes());
            b.ipv6(src, v.octets(), 64)
        }
    };
    let mut out = Vec::new();
    b.tcp(sport, 80, 1, 65535)
        .ack(1)
        .write(&mut out, &[])
        .expect("frame");
    out
}

fn frames(vip: IpAddr, first: u32, n: usize) -> Vec<Vec<u8>> {
    (0..n as u32).map(|i| frame(vip, first + i)).collect()
}

/// Runs `forward()` over a batch; returns how many frames were transmitted.
#[inline]
fn run_batch(batch: &mut [Vec<u8>], snap: &Snapshot, flows: &mut FlowTable, now: u64) -> u32 {
    let mut tx = 0;
    for f in batch.iter_mut() {
        if let Verdict::Tx { .. } = forward(black_box(f), snap, flows, now) {
            tx += 1;
        }
    }
    tx
}

/// Warms `flows` with every frame in `all` and checks they all forward.
fn warm(all: &mut [Vec<u8>], snap: &Snapshot, flows: &mut FlowTable) {
    for f in all.iter_mut() {
        let v = forward(f, snap, flows, 0);
        assert!(matches!(v, Verdict::Tx { new_flow: true, .. }), "{v:?}");
    }
    for f in all.iter_mut() {
        let v = forward(f, snap, flows, 0);
        assert!(
            matches!(
                v,
                Verdict::Tx {
                    new_flow: false,
                    ..
                }
            ),
            "{v:?}"
        );
    }
}

fn bench_forward<T: Measurement>(c: &mut Criterion<T>) {
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Elements(BATCH as u64));
    let vip4 = IpAddr::from(VIP4);

    for n in [3u32, 100] {
        let snap = snapshot(vip4, n);

        // Warm: the batch's own 64 flows are in the table.
        let mut flows = FlowTable::new(FLOW_CAPACITY, TIMEOUTS);
        let mut batch = frames(vip4, 0, BATCH);
        warm(&mut batch, &snap, &mut flows);
        g.bench_function(format!("warm_64flows_{n}rs"), |b| {
            b.iter(|| run_batch(&mut batch, &snap, &mut flows, 1))
        });

        // Warm: 64k live flows, batches taken in turn.
        let mut flows = FlowTable::new(FLOW_CAPACITY, TIMEOUTS);
        let mut all = frames(vip4, 0, 1 << 16);
        warm(&mut all, &snap, &mut flows);
        let mut at = 0usize;
        g.bench_function(format!("warm_64kflows_{n}rs"), |b| {
            b.iter(|| {
                let tx = run_batch(&mut all[at..at + BATCH], &snap, &mut flows, 1);
                at = (at + BATCH) % all.len();
                tx
            })
        });

        // All new: a fresh source address for every frame of every batch.
        let mut flows = FlowTable::new(FLOW_CAPACITY, TIMEOUTS);
        let mut batch = frames(vip4, 0, BATCH);
        let mut next = 1u32 << 24;
        g.bench_function(format!("new_flows_{n}rs"), |b| {
            b.iter(|| {
                for f in batch.iter_mut() {
                    // IPv4 source address: bytes 26..30 of the frame.
                    f[26..30].copy_from_slice(&next.to_be_bytes());
                    next = next.wrapping_add(1);
                }
                run_batch(&mut batch, &snap, &mut flows, 1)
            })
        });
    }

    let vip6 = IpAddr::from(VIP6);
    let snap = snapshot(vip6, 3);
    let mut flows = FlowTable::new(FLOW_CAPACITY, TIMEOUTS);
    let mut batch = frames(vip6, 0, BATCH);
    warm(&mut batch, &snap, &mut flows);
    g.bench_function("ipv6_warm_64flows_3rs", |b| {
        b.iter(|| run_batch(&mut batch, &snap, &mut flows, 1))
    });
    g.finish();
}

fn main() {
    run_benches!(bench_forward);
}
