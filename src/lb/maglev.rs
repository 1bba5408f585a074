//! Maglev consistent hashing (Eisenbud et al., NSDI'16, §3.4) with weights.
//!
//! [`build`] turns a set of real servers `(address, weight)` into a lookup table of prime
//! size `M`: slot -> index into the input slice. A flow picks `table[hash % M]`.
//!
//! Each backend's preference list is the permutation `(offset + j * skip) mod M` with
//! `offset = h1(addr) mod M` and `skip = h2(addr) mod (M - 1) + 1`, where `h1`/`h2` are
//! [`hash64`] (XXH64) over the backend's 16-byte address key (`tables::addr_key`) with two
//! fixed seeds. Backends then take turns, in a fixed order (sorted by address key), each
//! claiming its next preferred free slot, until the table is full.
//!
//! Weights by proportional turns: every round each backend adds its weight to a credit;
//! when the credit reaches the largest weight `W` among the backends, it takes one turn and
//! pays `W`. So a backend of weight `w` takes `w / W` turns per round (at most one), the
//! heaviest backends take one every round, and slot shares are proportional to weights
//! (each turn claims exactly one slot). Weight 0 means "not in the table". A backend whose
//! fair share is below one slot (e.g. weight 1 next to weight 65535) may get none.
//!
//! Guarantees:
//! - Deterministic across processes, machines and xlb versions: the inputs are only the
//!   addresses and weights (never list positions or random seeds), and the hash is fixed.
//!   Two directors with the same real servers build identical tables; the order of the
//!   input slice does not change which *address* owns a slot.
//! - No holes: when any weight is > 0 every slot names a backend; otherwise every slot is
//!   [`NO_BACKEND`].
//! - Near-minimal disruption when a backend is added or removed (paper §3.4; tested).
//!
//! Cost (prime `M`, the only case `build` accepts): probing the permutations against an
//! occupancy bitset that stays in L1 (8 KB for `M = 65537`) until only `sqrt(M)` slots
//! are free, about `M (ln M - ln sqrt(M))` probes (about 360k for `M = 65537`, whatever
//! `N`), with `u32` positions, no modulo and no bounds checks in the probe loop; then, for
//! the last `sqrt(M)` slots (which would cost another ~360k probes), each turn picks among
//! the free slots the one its permutation reaches first, by modular arithmetic
//! (`sqrt(M)^2 / 2` multiply-reduce steps in all). Equal weights skip the credit logic.
//! Measured (callgrind, N = 1000, M = 65537, equal weights): 13.7M instructions before
//! this two-phase fill, 7.7M after; about 1.2-1.5 ms of CPU on the loaded 2-vCPU VM
//! (benches/core_perf.rs, `XLB_CORE_MIN=1`), from about 2 ms.
//! A four-positions-per-iteration probe was tried and was slower.

use std::net::IpAddr;

use super::hash::hash64;
use super::tables::{addr_key, NO_BACKEND};

/// Seed of the hash that gives a backend's offset ("maglev-1").
const SEED_OFFSET: u64 = 0x6d61_676c_6576_2d31;
/// Seed of the hash that gives a backend's skip ("maglev-2").
const SEED_SKIP: u64 = 0x6d61_676c_6576_2d32;

/// Largest table size [`build`] accepts (2^31 - 1, a prime).
pub const MAX_TABLE_SIZE: usize = (1 << 31) - 1;

/// Why a table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    /// `m < 2`.
    #[error("table size {0} is too small (minimum 2)")]
    TooSmall(usize),
    /// `m > MAX_TABLE_SIZE`.
    #[error("table size {0} is too large (maximum {MAX_TABLE_SIZE})")]
    TooLarge(usize),
    /// `m` is not prime (a skip sharing a factor with `m` would not visit every slot).
    #[error("table size {0} is not prime")]
    NotPrime(usize),
    /// More backends than slots.
    #[error("{backends} real servers do not fit a table of {m} slots")]
    TooManyBackends {
        /// Number of backends given.
        backends: usize,
        /// Table size.
        m: usize,
    },
}

/// A backend's `(offset, skip)` in a table of size `m` (`m >= 2`).
pub fn permutation(addr: &IpAddr, m: usize) -> (usize, usize) {
    let key = addr_key(addr);
    let m64 = m as u64;
    let offset = hash64(&key, SEED_OFFSET) % m64;
    let skip = hash64(&key, SEED_SKIP) % (m64 - 1) + 1;
    (offset as usize, skip as usize)
}

/// Builds the Maglev table of prime size `m` for `backends` (`(address, weight)`).
///
/// Returns slot -> index into `backends`, or [`NO_BACKEND`] in every slot when no backend
/// has a weight > 0. Errors when `m` is not a prime in `2..=MAX_TABLE_SIZE` or there are
/// more backends than slots. Duplicate addresses are allowed (the config validator rejects
/// them); entries with the same address and weight are interchangeable.
pub fn build(backends: &[(IpAddr, u32)], m: usize) -> Result<Vec<u32>, MaglevError> {
    if m < 2 {
        return Err(MaglevError::TooSmall(m));
    }
    if m > MAX_TABLE_SIZE {
        return Err(MaglevError::TooLarge(m));
    }
    if !is_prime(m as u64) {
        return Err(MaglevError::NotPrime(m));
    }
    if backends.len() > m {
        return Err(MaglevError::TooManyBackends {
            backends: backends.len(),
            m,
        });
    }
    // Turn order by address (then weight), so the input order never matters.
    let mut order: Vec<(([u8; 16], u32), u32)> = backends
        .iter()
        .enumerate()
        .map(|(i, (a, w))| ((addr_key(a), *w), i as u32))
        .collect();
    order.sort_unstable();
    // Turns in address order, each writing its input index straight into the table.
    let turns: Vec<Turn> = order
        .iter()
        .filter(|&&((_, w), _)| w > 0)
        .map(|&((_, w), i)| {
            let (o, s) = permutation(&backends[i as usize].0, m);
            Turn::new(o as u32, s as u32, w, i)
        })
        .collect();
    Ok(fill_prime(turns, m))
}

/// Per-backend fill state of the generic loop.
struct GenericTurn {
    /// Next slot to try.
    cur: usize,
    skip: usize,
    weight: u64,
    credit: u64,
    idx: u32,
}

/// Per-backend fill state of [`fill_prime`].
struct Turn {
    /// Next slot to try (`< m`).
    cur: u32,
    /// `1..m`.
    skip: u32,
    /// Value written into the slots this backend claims.
    idx: u32,
    /// `skip^-1 mod m`, computed when first needed (0 = not yet).
    inv: u32,
    weight: u64,
    credit: u64,
}

impl Turn {
    fn new(cur: u32, skip: u32, weight: u32, idx: u32) -> Self {
        Turn {
            cur,
            skip,
            idx,
            inv: 0,
            weight: weight as u64,
            credit: 0,
        }
    }
}

/// `a^-1 mod m` for a prime `m` and `a` in `1..m` (extended Euclid).
fn mod_inverse(a: u32, m: u32) -> u32 {
    let (mut r0, mut r1) = (m as i64, a as i64);
    let (mut t0, mut t1) = (0i64, 1i64);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    t0.rem_euclid(m as i64) as u32
}

/// `x mod m` by Barrett reduction (`mu = u64::MAX / m`), exact for every `x: u64`.
#[inline(always)]
fn barrett(x: u64, m: u64, mu: u64) -> u64 {
    let q = ((x as u128 * mu as u128) >> 64) as u64;
    let mut r = x - q * m;
    if r >= m {
        r -= m;
    }
    if r >= m {
        r -= m;
    }
    r
}

/// `(c + skip) mod m` for `c, skip < m <= 2^31`: `min(x, x - m)` picks `x - m` exactly
/// when it did not wrap around.
#[inline(always)]
fn wrap_add(c: u32, skip: u32, m: u32) -> u32 {
    let x = c + skip;
    x.min(x.wrapping_sub(m))
}

/// The first free slot on `c, c + skip, ...` (mod `m`) in the occupancy bitset. With a
/// prime `m` the walk visits every slot, so it ends whenever the table is not full.
#[inline(always)]
fn probe(taken: &[u64], wmask: usize, mut c: u32, skip: u32, m: u32) -> u32 {
    while (taken[(c >> 6) as usize & wmask] >> (c & 63)) & 1 != 0 {
        c = wrap_add(c, skip, m);
    }
    c
}

/// Free slots at which [`fill_prime`] stops probing and switches to the free-slot scan.
///
/// Probing costs about `m / free` probes per turn, the scan `free` modular
/// multiplications; the crossover is near `sqrt(m)`.
fn scan_threshold(m: usize) -> usize {
    let mut r = (m as f64).sqrt() as usize;
    while r * r > m {
        r -= 1;
    }
    r
}

/// The Maglev fill loop for a prime `m <= MAX_TABLE_SIZE` over backends of weight > 0 in
/// turn order; returns slot -> `Turn::idx`, or all [`NO_BACKEND`] when `turns` is empty.
///
/// Same result as [`populate_generic`] (tested against the paper's loop), computed in
/// two phases:
/// 1. While many slots are free, each turn probes its permutation (`cur`, `cur + skip`,
///    ...) against an occupancy bitset sized to a power of two (so indexing needs no
///    bounds check) with `u32` positions and no modulo. With a prime `m` every
///    permutation visits every slot, so the probe always ends without a counter.
/// 2. When at most `scan_threshold(m)` slots are free, probing would cost `m / free`
///    probes per turn; instead the turn looks at every free slot `f` and takes the one
///    its permutation reaches first from `cur`: the smallest `(f - cur) * skip^-1 mod m`
///    (distinct for distinct `f`, so the choice is unique and equals what probing finds).
fn fill_prime(mut turns: Vec<Turn>, m: usize) -> Vec<u32> {
    debug_assert!((2..=MAX_TABLE_SIZE).contains(&m));
    let mut table = vec![NO_BACKEND; m];
    let Some(max_w) = turns.iter().map(|t| t.weight).max() else {
        return table;
    };
    let equal = turns.iter().all(|t| t.weight == max_w);
    let m32 = m as u32;
    let n = turns.len();
    let words = m.div_ceil(64).next_power_of_two();
    let wmask = words - 1;
    let mut taken = vec![0u64; words];
    let threshold = scan_threshold(m);
    let mut free = m;
    let mut i = 0usize;

    // Phase 1: probe. `i` ends as the index of the next turn.
    if free > threshold {
        'probing: loop {
            for (k, t) in turns.iter_mut().enumerate() {
                if !equal {
                    t.credit += t.weight;
                    if t.credit < max_w {
                        continue;
                    }
                    t.credit -= max_w;
                }
                let c = probe(&taken, wmask, t.cur, t.skip, m32);
                taken[(c >> 6) as usize & wmask] |= 1u64 << (c & 63);
                table[c as usize] = t.idx;
                t.cur = wrap_add(c, t.skip, m32);
                free -= 1;
                if free == threshold {
                    i = if k + 1 == n { 0 } else { k + 1 };
                    break 'probing;
                }
            }
        }
    }
    if free == 0 {
        return table;
    }

    // Phase 2: scan the few free slots.
    let mut free_slots: Vec<u32> = Vec::with_capacity(free);
    for (wi, &w) in taken[..m.div_ceil(64)].iter().enumerate() {
        let mut z = !w;
        while z != 0 {
            let slot = wi * 64 + z.trailing_zeros() as usize;
            if slot >= m {
                break;
            }
            free_slots.push(slot as u32);
            z &= z - 1;
        }
    }
    debug_assert_eq!(free_slots.len(), free);
    let m64 = m as u64;
    let mu = u64::MAX / m64;
    while !free_slots.is_empty() {
        let t = &mut turns[i];
        i += 1;
        if i == n {
            i = 0;
        }
        if !equal {
            t.credit += t.weight;
            if t.credit < max_w {
                continue;
            }
            t.credit -= max_w;
        }
        if t.inv == 0 {
            t.inv = mod_inverse(t.skip, m32);
        }
        let (cur, inv) = (t.cur, t.inv as u64);
        let mut best = (u64::MAX, 0usize);
        for (k, &f) in free_slots.iter().enumerate() {
            let diff = if f >= cur { f - cur } else { f + m32 - cur };
            let d = barrett(diff as u64 * inv, m64, mu);
            if d < best.0 {
                best = (d, k);
            }
        }
        let f = free_slots.swap_remove(best.1);
        table[f as usize] = t.idx;
        t.cur = wrap_add(f, t.skip, m32);
    }
    table
}

/// The Maglev fill loop on given `(offset, skip, weight)` per backend; returns slot ->
/// index into `perms` ([`NO_BACKEND`] where nothing could be placed).
///
/// `offset` is taken mod `m`, `skip` mod `m` with 0 replaced by 1. With a prime `m` every
/// slot is filled whenever a weight is > 0. With a composite `m` a backend whose skip shares
/// a factor with `m` gives up after a full cycle, so the loop always ends (holes possible).
pub fn populate(perms: &[(usize, usize, u32)], m: usize) -> Vec<u32> {
    if m == 0 {
        return Vec::new();
    }
    if m <= MAX_TABLE_SIZE && is_prime(m as u64) {
        let turns: Vec<Turn> = perms
            .iter()
            .enumerate()
            .filter(|(_, p)| p.2 > 0)
            .map(|(i, &(o, s, w))| {
                let s = if s % m == 0 { 1 } else { s % m };
                Turn::new((o % m) as u32, s as u32, w, i as u32)
            })
            .collect();
        return fill_prime(turns, m);
    }
    populate_generic(perms, m)
}

/// [`populate`] for any `m >= 1`, composite included (the original loop, with a give-up
/// after a full cycle for skips sharing a factor with `m`).
fn populate_generic(perms: &[(usize, usize, u32)], m: usize) -> Vec<u32> {
    let mut table = vec![NO_BACKEND; m];
    let mut turns: Vec<GenericTurn> = perms
        .iter()
        .enumerate()
        .filter(|(_, p)| p.2 > 0)
        .map(|(i, &(o, s, w))| GenericTurn {
            cur: o % m,
            skip: if s % m == 0 { 1 % m } else { s % m },
            weight: w as u64,
            credit: 0,
            idx: i as u32,
        })
        .collect();
    let Some(max_w) = turns.iter().map(|t| t.weight).max() else {
        return table;
    };
    let mut taken = vec![0u64; m.div_ceil(64)];
    let mut filled = 0usize;
    while !turns.is_empty() {
        let mut exhausted = false;
        for t in turns.iter_mut() {
            t.credit += t.weight;
            if t.credit < max_w {
                continue;
            }
            t.credit -= max_w;
            let mut c = t.cur;
            let mut tries = 0usize;
            while taken[c >> 6] & (1u64 << (c & 63)) != 0 {
                c += t.skip;
                if c >= m {
                    c -= m;
                }
                tries += 1;
                if tries == m {
                    break;
                }
            }
            if tries == m {
                // Its permutation has no free slot left (only with a composite m).
                t.weight = 0;
                exhausted = true;
                continue;
            }
            taken[c >> 6] |= 1u64 << (c & 63);
            table[c] = t.idx;
            filled += 1;
            if filled == m {
                return table;
            }
            c += t.skip;
            if c >= m {
                c -= m;
            }
            t.cur = c;
        }
        if exhausted {
            turns.retain(|t| t.weight > 0);
        }
    }
    table
}

/// Deterministic Miller-Rabin primality test, exact for every `u64`.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    const SMALL: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    for p in SMALL {
        if n % p == 0 {
            return n == p;
        }
    }
    let mul = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let pow = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        b %= n;
        while e > 0 {
            if e & 1 == 1 {
                r = mul(r, b);
            }
            b = mul(b, b);
            e >>= 1;
        }
        r
    };
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    // These 12 bases decide every n < 3.3e24, so every u64.
    'bases: for a in SMALL {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const M: usize = 65537;

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn equal(n: u32) -> Vec<(IpAddr, u32)> {
        (0..n).map(|i| (v4(i), 1)).collect()
    }

    fn counts(table: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0usize; n];
        for &s in table {
            c[s as usize] += 1;
        }
        c
    }

    /// The paper's Table 1 (M = 7).
    #[test]
    fn paper_table_1() {
        let (b1, b2, b3) = ((3, 4, 1), (0, 2, 1), (3, 1, 1));
        assert_eq!(populate(&[b1, b2, b3], 7), vec![1, 0, 1, 0, 2, 2, 0]);
        assert_eq!(populate(&[b1, b3], 7), vec![0, 0, 0, 0, 1, 1, 1]);
        // Weight 0 is the same as absent (indexes still refer to the input).
        assert_eq!(populate(&[b1, (0, 2, 0), b3], 7), vec![0, 0, 0, 0, 2, 2, 2]);
    }

    #[test]
    fn errors() {
        let b = equal(3);
        assert_eq!(build(&b, 0), Err(MaglevError::TooSmall(0)));
        assert_eq!(build(&b, 1), Err(MaglevError::TooSmall(1)));
        assert_eq!(build(&b, 65536), Err(MaglevError::NotPrime(65536)));
        assert_eq!(build(&b, 100), Err(MaglevError::NotPrime(100)));
        assert_eq!(
            build(&equal(12), 11),
            Err(MaglevError::TooManyBackends {
                backends: 12,
                m: 11
            })
        );
        assert_eq!(
            build(&b, MAX_TABLE_SIZE + 2),
            Err(MaglevError::TooLarge(MAX_TABLE_SIZE + 2))
        );
        assert!(build(&equal(2), 2).is_ok());
        assert!(build(&equal(11), 11).is_ok());
    }

    #[test]
    fn empty_or_all_zero_weights_give_no_backend() {
        assert_eq!(build(&[], 7).unwrap(), vec![NO_BACKEND; 7]);
        let zero = vec![(v4(1), 0), (v4(2), 0)];
        assert_eq!(build(&zero, 13).unwrap(), vec![NO_BACKEND; 13]);
    }

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..60).filter(|&n| is_prime(n)).collect();
        assert_eq!(
            small,
            vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]
        );
        for p in [
            65537u64,
            65521,
            131071,
            1_000_003,
            (1 << 31) - 1,
            (1 << 61) - 1,
        ] {
            assert!(is_prime(p), "{p}");
        }
        assert!(is_prime(18_446_744_073_709_551_557)); // largest u64 prime
                                                       // Carmichael numbers, strong pseudoprimes to small bases, squares of primes.
        for c in [
            561u64,
            1105,
            2047,
            3_215_031_751,
            65537 * 65537,
            4_294_967_297,
        ] {
            assert!(!is_prime(c), "{c}");
        }
        assert!(!is_prime(u64::MAX));
    }

    #[test]
    fn no_holes_and_even_spread_400_equal() {
        let t = build(&equal(400), M).unwrap();
        assert!(t.iter().all(|&s| s != NO_BACKEND));
        let c = counts(&t, 400);
        let (lo, hi) = (c.iter().min().unwrap(), c.iter().max().unwrap());
        assert!(hi - lo <= 1, "min {lo} max {hi}");
    }

    #[test]
    fn weights_are_proportional() {
        let b = vec![(v4(1), 1), (v4(2), 2), (v4(3), 3)];
        let t = build(&b, M).unwrap();
        let c = counts(&t, 3);
        for (i, want) in [1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0].iter().enumerate() {
            let share = c[i] as f64 / M as f64;
            assert!(
                (share - want).abs() < 0.01,
                "backend {i}: {share} vs {want}"
            );
        }
        // A large spread of weights still fills the table, proportionally.
        let b = vec![(v4(1), 65535), (v4(2), 1), (v4(3), 100)];
        let t = build(&b, 65537).unwrap();
        let c = counts(&t, 3);
        // Expected shares: 65537 * w / 65636 = 65438.2, 1.0, 99.8 slots.
        assert!(c[1] <= 1, "{c:?}");
        assert!((c[2] as i64 - 100).abs() <= 1, "{c:?}");
        assert_eq!(c.iter().sum::<usize>(), 65537);
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let b: Vec<(IpAddr, u32)> = (0..50).map(|i| (v4(i * 7), 1 + i % 4)).collect();
        let mut r = b.clone();
        r.reverse();
        r.swap(3, 17);
        let t1 = build(&b, 4099).unwrap();
        let t2 = build(&r, 4099).unwrap();
        assert_eq!(t1, build(&b, 4099).unwrap());
        for (x, y) in t1.iter().zip(&t2) {
            assert_eq!(b[*x as usize].0, r[*y as usize].0);
        }
    }

    /// Slots whose owner changed although the owner was not the removed backend.
    fn extra_moves(before: &[(IpAddr, u32)], after: &[(IpAddr, u32)], m: usize) -> usize {
        let t1 = build(before, m).unwrap();
        let t2 = build(after, m).unwrap();
        let gone: Vec<IpAddr> = before
            .iter()
            .filter(|b| !after.contains(b))
            .map(|b| b.0)
            .collect();
        t1.iter()
            .zip(&t2)
            .filter(|(x, y)| {
                let a = before[**x as usize].0;
                !gone.contains(&a) && a != after[**y as usize].0
            })
            .count()
    }

    #[test]
    fn removing_one_of_1000_is_near_minimal() {
        let b = equal(1000);
        let mut after = b.clone();
        after.remove(421);
        let moved = extra_moves(&b, &after, M);
        let frac = moved as f64 / M as f64;
        eprintln!(
            "removing 1 of 1000: {moved} extra slots moved ({:.3}%)",
            frac * 100.0
        );
        assert!(frac < 0.015, "moved {moved} slots ({:.3}%)", frac * 100.0);
        // Adding it back is the inverse.
        let back = extra_moves(&after, &b, M);
        assert!((back as f64 / M as f64) < 0.015);
    }

    /// The table is the same in every process and xlb version: the owners of the first 16
    /// slots for a fixed set of three backends, computed once and written here.
    #[test]
    fn pinned_table_across_processes() {
        let b: Vec<(IpAddr, u32)> = vec![
            ("192.168.5.104".parse().unwrap(), 1),
            ("192.168.5.105".parse().unwrap(), 1),
            ("2001:db8::7".parse().unwrap(), 1),
        ];
        let t = build(&b, M).unwrap();
        let owners: String = t[..16]
            .iter()
            .map(|&i| match i {
                0 => 'a',
                1 => 'b',
                _ => 'c',
            })
            .collect();
        assert_eq!(owners, "ccbacabbbacaabbc");
        let p: Vec<(usize, usize)> = b.iter().map(|x| permutation(&x.0, M)).collect();
        assert_eq!(p, vec![(14270, 23125), (37172, 2861), (17617, 63620)]);
    }

    #[test]
    fn ipv4_and_mapped_ipv6_are_the_same_backend() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert_eq!(permutation(&a, M), permutation(&b, M));
        let c = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_ne!(permutation(&a, M), permutation(&c, M));
    }

    /// The paper's loop, written plainly (one probe at a time, modulo per step).
    fn populate_reference(perms: &[(usize, usize, u32)], m: usize) -> Vec<u32> {
        let mut table = vec![NO_BACKEND; m];
        let max_w = perms.iter().map(|p| p.2).max().unwrap_or(0) as u64;
        if max_w == 0 {
            return table;
        }
        let mut next = vec![0usize; perms.len()];
        let mut credit = vec![0u64; perms.len()];
        let mut filled = 0;
        loop {
            for (i, &(o, s, w)) in perms.iter().enumerate() {
                credit[i] += w as u64;
                if credit[i] < max_w {
                    continue;
                }
                credit[i] -= max_w;
                let mut c = (o + next[i] * s) % m;
                while table[c] != NO_BACKEND {
                    next[i] += 1;
                    c = (o + next[i] * s) % m;
                }
                table[c] = i as u32;
                next[i] += 1;
                filled += 1;
                if filled == m {
                    return table;
                }
            }
        }
    }

    /// `build` written plainly on top of the paper's loop (no fast paths).
    fn build_reference(backends: &[(IpAddr, u32)], m: usize) -> Vec<u32> {
        let mut order: Vec<(([u8; 16], u32), u32)> = backends
            .iter()
            .enumerate()
            .map(|(i, (a, w))| ((addr_key(a), *w), i as u32))
            .collect();
        order.sort_unstable();
        let perms: Vec<(usize, usize, u32)> = order
            .iter()
            .map(|&((_, w), i)| {
                let (o, s) = permutation(&backends[i as usize].0, m);
                (o, s, w)
            })
            .collect();
        populate_reference(&perms, m)
            .into_iter()
            .map(|s| {
                if s == NO_BACKEND {
                    s
                } else {
                    order[s as usize].1
                }
            })
            .collect()
    }

    /// Deterministic xorshift for test inputs.
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// The fast build is bit-identical to the plain reference on many random backend sets:
    /// IPv4 and IPv6, equal and unequal weights (including zeros and extreme spreads), N
    /// from 1 to 1000, tables from 2 to 65537 slots (both fill phases and the switch
    /// between them).
    #[test]
    fn build_matches_reference_on_random_sets() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut cases = 0;
        for &m in &[2usize, 3, 7, 13, 97, 251, 1009, 4099, 65537] {
            let rounds = if m == 65537 { 6 } else { 40 };
            for r in 0..rounds {
                let max_n = m.min(if m == 65537 { 1000 } else { 300 });
                let n = 1 + (next(&mut x) as usize) % max_n;
                let b: Vec<(IpAddr, u32)> = (0..n)
                    .map(|_| {
                        let v = next(&mut x);
                        let addr = if v & 1 == 0 {
                            IpAddr::V4(Ipv4Addr::from((v >> 8) as u32))
                        } else {
                            IpAddr::V6(Ipv6Addr::from(((v as u128) << 64) | next(&mut x) as u128))
                        };
                        let w = match r % 4 {
                            0 => 1,
                            1 => 1 + (v >> 40) as u32 % 10,
                            2 => (v >> 40) as u32 % 4, // zeros included
                            _ => [1, 100, 65535][(v >> 40) as usize % 3],
                        };
                        (addr, w)
                    })
                    .collect();
                assert_eq!(build(&b, m).unwrap(), build_reference(&b, m), "m {m} n {n}");
                cases += 1;
            }
        }
        assert!(cases > 300);
    }

    #[test]
    fn populate_composite_sizes_match_reference_where_it_fills() {
        // Composite m: the generic loop; skips coprime with m fill the table like the paper.
        let perms = [(0usize, 1usize, 1u32), (3, 5, 2), (7, 7, 1)];
        assert_eq!(populate(&perms, 12), populate_reference(&perms, 12));
        assert_eq!(populate(&perms, 0), Vec::<u32>::new());
    }

    #[test]
    fn barrett_and_inverse_are_exact() {
        let mut x = 99u64;
        for &m in &[2u64, 3, 7, 65537, 1_000_003, MAX_TABLE_SIZE as u64] {
            let mu = u64::MAX / m;
            for v in [0, 1, m - 1, m, m + 1, 2 * m - 1, u64::MAX, u64::MAX - 1] {
                assert_eq!(barrett(v, m, mu), v % m, "{v} mod {m}");
            }
            for _ in 0..10_000 {
                let v = next(&mut x);
                assert_eq!(barrett(v, m, mu), v % m, "{v} mod {m}");
                let a = 1 + (v % (m - 1).max(1)) as u32;
                let a = if m == 2 { 1 } else { a };
                let inv = mod_inverse(a, m as u32) as u64;
                assert_eq!(a as u64 * inv % m, 1, "{a}^-1 mod {m}");
            }
        }
    }

    fn backends() -> impl Strategy<Value = Vec<(IpAddr, u32)>> {
        let addr = prop_oneof![
            any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
            any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
        ];
        proptest::collection::hash_map(addr, 0u32..6, 0..40)
            .prop_map(|m: HashMap<IpAddr, u32>| m.into_iter().collect())
    }

    proptest! {
        #[test]
        fn prop_populate_matches_reference(
            m in prop::sample::select(vec![2usize, 3, 5, 7, 13, 97, 251, 1009]),
            raw in proptest::collection::vec((any::<usize>(), any::<usize>(), 0u32..5), 1..30),
        ) {
            // Offsets in 0..m, skips in 1..m, as `build` makes them.
            let perms: Vec<(usize, usize, u32)> = raw
                .iter()
                .map(|&(o, s, w)| (o % m, s % (m - 1) + 1, w))
                .collect();
            prop_assert_eq!(populate(&perms, m), populate_reference(&perms, m));
        }

        #[test]
        fn prop_no_holes(b in backends(), m in prop::sample::select(vec![41usize, 251, 1009, 4099])) {
            let t = build(&b, m).unwrap();
            prop_assert_eq!(t.len(), m);
            if b.iter().any(|x| x.1 > 0) {
                prop_assert!(t.iter().all(|&s| (s as usize) < b.len() && b[s as usize].1 > 0));
                // Every backend with weight > 0 gets at least one slot... when m is large
                // enough for the weights to matter: check the heaviest ones do.
                let max = b.iter().map(|x| x.1).max().unwrap();
                for (i, x) in b.iter().enumerate() {
                    if x.1 == max {
                        prop_assert!(t.contains(&(i as u32)));
                    }
                }
            } else {
                prop_assert!(t.iter().all(|&s| s == NO_BACKEND));
            }
        }

        #[test]
        fn prop_deterministic_and_order_free(b in backends(), seed in any::<u64>()) {
            let m = 1009;
            let t1 = build(&b, m).unwrap();
            prop_assert_eq!(&t1, &build(&b, m).unwrap());
            // A deterministic shuffle of the input.
            let mut s = b.clone();
            let mut x = seed | 1;
            for i in (1..s.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                s.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let t2 = build(&s, m).unwrap();
            for (p, q) in t1.iter().zip(&t2) {
                let a = (*p != NO_BACKEND).then(|| b[*p as usize].0);
                let c = (*q != NO_BACKEND).then(|| s[*q as usize].0);
                prop_assert_eq!(a, c);
            }
        }
    }
}
