//! Benchmarks of the load-balancing core: Maglev table builds (N = 100 and 1000 real
//! servers, M = 65537, equal and mixed weights), the flow hash, and flow-table lookups
//! (hit, miss) and inserts (into free ways and into full buckets, i.e. with LRU eviction).
//!
//! `XLB_BENCH_CPU_TIME=1 cargo bench --bench maglev` measures the benchmark thread's CPU
//! time (`CLOCK_THREAD_CPUTIME_ID`) instead of wall-clock time: use it on a shared, loaded
//! machine, where wall-clock numbers include time spent waiting for a core.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::measurement::Measurement;
use criterion::{BatchSize, Criterion, Throughput};
use xlb::lb::flow::{FlowKey, FlowTable, FlowTimeouts};
use xlb::lb::hash::hash_flow;
use xlb::lb::maglev;

#[macro_use]
mod common;

const M: usize = 65537;

fn backends(n: u32, mixed: bool) -> Vec<(IpAddr, u32)> {
    (0..n)
        .map(|i| {
            let w = if mixed { 1 + i % 10 } else { 1 };
            (IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), w)
        })
        .collect()
}

fn keys(n: usize) -> Vec<FlowKey> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut src = [0u8; 16];
            src[10] = 0xff;
            src[11] = 0xff;
            src[12..].copy_from_slice(&(x as u32).to_be_bytes());
            let mut dst = src;
            dst[12..].copy_from_slice(&[192, 168, 5, 188]);
            FlowKey {
                src,
                dst,
                sport: (x >> 32) as u16,
                dport: 80,
                proto: 6,
            }
        })
        .collect()
}

const TIMEOUTS: FlowTimeouts = FlowTimeouts {
    tcp_ms: 900_000,
    tcp_fin_ms: 30_000,
    udp_ms: 30_000,
};

fn bench_maglev<T: Measurement>(c: &mut Criterion<T>) {
    let mut g = c.benchmark_group("maglev_build");
    for n in [100u32, 1000] {
        let b = backends(n, false);
        g.bench_function(format!("n{n}_m65537_equal"), |bench| {
            bench.iter(|| maglev::build(black_box(&b), M).unwrap())
        });
        let b = backends(n, true);
        g.bench_function(format!("n{n}_m65537_weights1to10"), |bench| {
            bench.iter(|| maglev::build(black_box(&b), M).unwrap())
        });
    }
    g.finish();
}

fn bench_flow<T: Measurement>(c: &mut Criterion<T>) {
    const N: usize = 1 << 16;
    let ks = keys(N);
    let hashes: Vec<u64> = ks.iter().map(hash_flow).collect();

    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("hash_flow_x65536", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &ks {
                acc ^= hash_flow(black_box(k));
            }
            acc
        })
    });

    // Reference point only (not stable across CPUs, so not usable for xlb's flow hash).
    let rs = ahash::RandomState::with_seeds(1, 2, 3, 4);
    g.bench_function("ahash_reference_x65536", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &ks {
                acc ^= rs.hash_one(black_box(k));
            }
            acc
        })
    });

    // 1M-entry table (as in the example config), 64k live flows: lookups that hit.
    let mut t = FlowTable::new(1 << 20, TIMEOUTS);
    for (i, (k, h)) in ks.iter().zip(&hashes).enumerate() {
        t.insert(k, *h, i as u32, 0);
    }
    g.bench_function("lookup_hit_1M_table_x65536", |b| {
        b.iter(|| {
            let mut acc = 0u32;
            for (k, h) in ks.iter().zip(&hashes) {
                if let Some(e) = t.lookup(k, *h, 1) {
                    acc = acc.wrapping_add(e.backend());
                }
            }
            acc
        })
    });
    let miss = keys(2 * N)[N..].to_vec();
    let miss_h: Vec<u64> = miss.iter().map(hash_flow).collect();
    g.bench_function("lookup_miss_1M_table_x65536", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for (k, h) in miss.iter().zip(&miss_h) {
                n += t.lookup(k, *h, 1).is_some() as u32;
            }
            n
        })
    });
    g.bench_function("insert_into_free_ways_x65536", |b| {
        b.iter_batched_ref(
            || FlowTable::new(1 << 20, TIMEOUTS),
            |t| {
                for (i, (k, h)) in ks.iter().zip(&hashes).enumerate() {
                    t.insert(k, *h, i as u32, 0);
                }
            },
            BatchSize::LargeInput,
        )
    });
    // 4k-entry table, 64k distinct flows: almost every insert evicts (LRU scan of 8 ways).
    let mut small = FlowTable::new(1 << 12, TIMEOUTS);
    let mut now = 0u64;
    g.bench_function("insert_with_eviction_x65536", |b| {
        b.iter(|| {
            now += 1;
            for (i, (k, h)) in ks.iter().zip(&hashes).enumerate() {
                small.insert(k, *h, i as u32, now);
            }
        })
    });
    g.finish();
}

fn main() {
    run_benches!(bench_maglev, bench_flow);
}
