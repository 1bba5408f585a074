//! Stable 64-bit hashing for everything two directors must agree on.
//!
//! Two directors (MASTER and BACKUP) must build identical Maglev tables and pick the same
//! real server for the same flow, so that connections survive a failover. That needs a
//! hash whose output is fixed forever: the same on every process, machine, CPU feature set
//! and xlb version. `std`'s `RandomState` (random per process) and `ahash` (output depends
//! on CPU features) cannot give that, so this module implements two fixed algorithms:
//!
//! - [`hash64`]: **XXH64** (Yann Collet's xxHash, 64-bit variant), bit-exact with the
//!   reference implementation (the tests check the published vectors). Used for
//!   Maglev offsets and skips over backend addresses.
//! - [`hash_flow`]: a fixed-width hash of the 5-tuple for the per-packet path. It reads the
//!   key as five 64-bit little-endian words (source address ×2, destination address ×2,
//!   `sport | dport << 16 | proto << 32`), feeds them through XXH64's round/merge steps in
//!   two independent lanes and finishes with XXH64's avalanche (the murmur3 `fmix64`
//!   shape). Every step is a bijection of the accumulator, so a change of any input bit
//!   changes the output, and the finaliser spreads it over all 64 output bits (tested:
//!   single-bit flips flip about half the output bits; even source ports spread evenly).
//!
//! Guarantee: the outputs of both functions are pinned by test vectors; changing either
//! function breaks a test and would break failover between mixed-version directors, so
//! don't.
//!
//! Neither function is keyed against an attacker: a public, stable hash cannot be. A client
//! can choose source ports that land on one real server, as with any stable L4 balancer.

use super::flow::FlowKey;

const P1: u64 = 0x9E37_79B1_85EB_CA87;
const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const P3: u64 = 0x1656_67B1_9E37_79F9;
const P4: u64 = 0x85EB_CA77_C2B2_AE63;
const P5: u64 = 0x27D4_EB2F_1656_67C5;

/// Seeds of the two lanes of [`hash_flow`] (arbitrary fixed constants: digits of pi).
const FLOW_SEED_A: u64 = 0x243F_6A88_85A3_08D3;
const FLOW_SEED_B: u64 = 0x1319_8A2E_0370_7344;

#[inline(always)]
const fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(31)
        .wrapping_mul(P1)
}

#[inline(always)]
fn merge_round(acc: u64, val: u64) -> u64 {
    (acc ^ round(0, val)).wrapping_mul(P1).wrapping_add(P4)
}

#[inline(always)]
fn avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

#[inline(always)]
fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn read_u32(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w) as u64
}

/// XXH64 of `data` with `seed`, bit-exact with the xxHash reference implementation.
///
/// Stable across processes, machines, CPU features and xlb versions.
pub fn hash64(data: &[u8], seed: u64) -> u64 {
    let len = data.len();
    let mut i = 0usize;
    let mut h: u64;
    if len >= 32 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        while i + 32 <= len {
            v1 = round(v1, read_u64(data, i));
            v2 = round(v2, read_u64(data, i + 8));
            v3 = round(v3, read_u64(data, i + 16));
            v4 = round(v4, read_u64(data, i + 24));
            i += 32;
        }
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
        h = merge_round(h, v1);
        h = merge_round(h, v2);
        h = merge_round(h, v3);
        h = merge_round(h, v4);
    } else {
        h = seed.wrapping_add(P5);
    }
    h = h.wrapping_add(len as u64);
    while i + 8 <= len {
        h ^= round(0, read_u64(data, i));
        h = h.rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        i += 8;
    }
    if i + 4 <= len {
        h ^= read_u32(data, i).wrapping_mul(P1);
        h = h.rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        i += 4;
    }
    while i < len {
        h ^= (data[i] as u64).wrapping_mul(P5);
        h = h.rotate_left(11).wrapping_mul(P1);
        i += 1;
    }
    avalanche(h)
}

/// One XXH64 tail step: folds a whole 64-bit word into the accumulator (a bijection of
/// `acc` for a fixed word, and of the word for a fixed `acc`).
#[inline(always)]
const fn step(acc: u64, w: u64) -> u64 {
    (acc ^ round(0, w))
        .rotate_left(27)
        .wrapping_mul(P1)
        .wrapping_add(P4)
}

/// Hash of a flow's 5-tuple, for Maglev picks and flow-table buckets. Fixed width, no
/// branches, about a dozen multiplies.
///
/// Definition (pinned by tests): with `s0,s1` / `d0,d1` the little-endian 64-bit halves of
/// the source / destination address and `p = sport | dport << 16 | proto << 32`,
/// `a = step(step(SEED_A, s0), d0)`, `b = step(step(SEED_B, s1), d1)`,
/// `hash = avalanche(step(rotl(a, 1) + rotl(b, 7), p))` using XXH64's `step` and
/// `avalanche`.
#[inline]
pub fn hash_flow(key: &FlowKey) -> u64 {
    hash_flow_parts(&key.src, &key.dst, key.sport, key.dport, key.proto)
}

/// [`hash_flow`] of the key with these fields, without building the key first.
///
/// Same output as `hash_flow(&FlowKey { src, dst, sport, dport, proto })`. For the
/// per-packet path: when the key is assembled in memory (ports stored as two 16-bit
/// writes) and hashed right away, the compiler merges the port reads into one 32-bit load
/// that cannot be forwarded from the two stores, a stall of a dozen cycles per packet.
#[inline(always)]
pub fn hash_flow_parts(src: &[u8; 16], dst: &[u8; 16], sport: u16, dport: u16, proto: u8) -> u64 {
    let s0 = u64::from_le_bytes(src[..8].try_into().unwrap_or([0; 8]));
    let s1 = u64::from_le_bytes(src[8..].try_into().unwrap_or([0; 8]));
    let d0 = u64::from_le_bytes(dst[..8].try_into().unwrap_or([0; 8]));
    let d1 = u64::from_le_bytes(dst[8..].try_into().unwrap_or([0; 8]));
    let p = sport as u64 | (dport as u64) << 16 | (proto as u64) << 32;
    let a = step(step(FLOW_SEED_A, s0), d0);
    let b = step(step(FLOW_SEED_B, s1), d1);
    let h = a.rotate_left(1).wrapping_add(b.rotate_left(7));
    avalanche(step(h, p))
}

/// Lane A of [`hash_flow_parts`] for IPv4-mapped addresses, whose first 8 bytes are 0.
const V4_LANE_A: u64 = step(step(FLOW_SEED_A, 0), 0).rotate_left(1);

/// [`hash_flow`] of an IPv4 5-tuple, bit-identical to hashing the IPv4-mapped key (same
/// function, not a new one: lane A sees only the mapped addresses' zero upper halves, so it
/// is a constant, and the lower halves are `00 00 ff ff a b c d`).
#[inline(always)]
pub fn hash_flow_v4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8) -> u64 {
    let s1 = 0xffff_0000 | (u32::from_le_bytes(src) as u64) << 32;
    let d1 = 0xffff_0000 | (u32::from_le_bytes(dst) as u64) << 32;
    let p = sport as u64 | (dport as u64) << 16 | (proto as u64) << 32;
    let b = step(step(FLOW_SEED_B, s1), d1);
    let h = V4_LANE_A.wrapping_add(b.rotate_left(7));
    avalanche(step(h, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published XXH64 vectors (xxHash reference, python-xxhash, ClickHouse tests).
    #[test]
    fn xxh64_matches_reference_vectors() {
        assert_eq!(hash64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(hash64(b"a", 0), 15154266338359012955);
        assert_eq!(hash64(b"a", 1), 16051599287423682246);
        assert_eq!(hash64(b"a", u64::MAX), 6972758980737027682);
        assert_eq!(hash64(b"ab", 0), 7347350983217793633);
        assert_eq!(hash64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        assert_eq!(hash64(b"ABC", 0), 0xE66A_E735_4FCF_EE98);
        assert_eq!(hash64(b"xxhash", 0), 0x32DD_3895_2C4B_C720);
        // 71 bytes: exercises the 32-byte stripe loop, the 8-, 4- and 1-byte tails.
        assert_eq!(
            hash64(
                b"This code is derived from software contributed to The DragonFly Project",
                0x4d61_7474_446c_6c6e
            ),
            0x103c_241e_eddc_8d32
        );
        assert_eq!(hash64(b"", 0x4d61_7474_446c_6c6e), 0x8456_6ac0_f5a0_cb84);
        assert_eq!(
            hash64(b"hammer2", 0x4d61_7474_446c_6c6e),
            0xa041_be26_8b56_74e5
        );
    }

    fn key(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, proto: u8) -> FlowKey {
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
        }
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[10] = 0xff;
        k[11] = 0xff;
        k[12..].copy_from_slice(&a);
        k
    }

    /// Pinned outputs of `hash_flow`, computed once by this implementation. If this test
    /// fails, the flow hash changed and directors of different versions would disagree.
    #[test]
    fn hash_flow_pinned_vectors() {
        let cases = [
            (key([0; 16], [0; 16], 0, 0, 0), 0x7299_fddd_6a4a_cf6eu64),
            (
                key(v4([10, 0, 0, 1]), v4([192, 168, 5, 188]), 40000, 80, 6),
                0x6fb7_e6a5_0131_356f,
            ),
            (
                key(v4([10, 0, 0, 1]), v4([192, 168, 5, 188]), 40002, 80, 6),
                0xbea0_1cd6_9957_6a19,
            ),
            (
                key(v4([10, 0, 0, 1]), v4([192, 168, 5, 188]), 40000, 80, 17),
                0x766f_3c24_f280_dbd2,
            ),
            (
                key(
                    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    [
                        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x88,
                    ],
                    55555,
                    443,
                    6,
                ),
                0x9437_5f22_ebe9_ee47,
            ),
        ];
        for (k, want) in cases {
            assert_eq!(
                hash_flow(&k),
                want,
                "hash_flow({k:?}) = {:#x}",
                hash_flow(&k)
            );
        }
    }

    /// Deterministic xorshift64* for test inputs (no rand dependency).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn key(&mut self) -> FlowKey {
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src[..8].copy_from_slice(&self.next().to_le_bytes());
            src[8..].copy_from_slice(&self.next().to_le_bytes());
            dst[..8].copy_from_slice(&self.next().to_le_bytes());
            dst[8..].copy_from_slice(&self.next().to_le_bytes());
            let r = self.next();
            key(src, dst, r as u16, (r >> 16) as u16, (r >> 32) as u8)
        }
    }

    fn flip(k: &FlowKey, bit: usize) -> FlowKey {
        let mut k = *k;
        match bit {
            0..=127 => k.src[bit / 8] ^= 1 << (bit % 8),
            128..=255 => k.dst[(bit - 128) / 8] ^= 1 << (bit % 8),
            256..=271 => k.sport ^= 1 << (bit - 256),
            272..=287 => k.dport ^= 1 << (bit - 272),
            _ => k.proto ^= 1 << (bit - 288),
        }
        k
    }

    /// Flipping any single input bit flips each output bit with probability ~1/2: for
    /// every input bit the mean number of flipped output bits is near 32, and every
    /// (input bit, output bit) pair flips in 30%..70% of the samples.
    #[test]
    fn hash_flow_avalanche() {
        const SAMPLES: usize = 400;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let keys: Vec<FlowKey> = (0..SAMPLES).map(|_| rng.key()).collect();
        for bit in 0..296 {
            let mut per_out = [0u32; 64];
            let mut total = 0u64;
            for k in &keys {
                let d = hash_flow(k) ^ hash_flow(&flip(k, bit));
                total += d.count_ones() as u64;
                for (o, c) in per_out.iter_mut().enumerate() {
                    *c += ((d >> o) & 1) as u32;
                }
            }
            let mean = total as f64 / SAMPLES as f64;
            assert!((30.0..34.0).contains(&mean), "input bit {bit}: mean {mean}");
            for (o, &c) in per_out.iter().enumerate() {
                let p = c as f64 / SAMPLES as f64;
                assert!(
                    (0.3..0.7).contains(&p),
                    "input bit {bit} -> output bit {o}: {p}"
                );
            }
        }
    }

    #[test]
    fn hash64_avalanche() {
        const SAMPLES: usize = 300;
        let mut rng = Rng(7);
        for bit in 0..128 {
            let mut total = 0u64;
            for _ in 0..SAMPLES {
                let mut a = [0u8; 16];
                a[..8].copy_from_slice(&rng.next().to_le_bytes());
                a[8..].copy_from_slice(&rng.next().to_le_bytes());
                let mut b = a;
                b[bit / 8] ^= 1 << (bit % 8);
                total += (hash64(&a, 1) ^ hash64(&b, 1)).count_ones() as u64;
            }
            let mean = total as f64 / SAMPLES as f64;
            assert!((30.0..34.0).contains(&mean), "input bit {bit}: mean {mean}");
        }
    }

    /// Linux clients prefer even source ports: 10,000 flows from one client with even ports
    /// must still spread evenly over 3 real servers.
    #[test]
    fn even_source_ports_spread_over_three_buckets() {
        let mut counts = [0u32; 3];
        for i in 0..10_000u32 {
            let sport = (32768 + 2 * i) as u16;
            let k = key(v4([10, 0, 0, 7]), v4([192, 168, 5, 188]), sport, 80, 6);
            counts[(hash_flow(&k) % 3) as usize] += 1;
        }
        let expect = 10_000.0 / 3.0;
        for c in counts {
            assert!(
                (c as f64 - expect).abs() < expect * 0.10,
                "bucket counts {counts:?}"
            );
        }
        // Also many clients with a fixed port and even last octets.
        let mut counts = [0u32; 3];
        for i in 0..10_000u32 {
            let a = (i * 2).to_be_bytes();
            let k = key(
                v4([10, a[1], a[2], a[3]]),
                v4([192, 168, 5, 188]),
                40000,
                80,
                6,
            );
            counts[(hash_flow(&k) % 3) as usize] += 1;
        }
        for c in counts {
            assert!(
                (c as f64 - expect).abs() < expect * 0.10,
                "bucket counts {counts:?}"
            );
        }
    }

    #[test]
    fn hash_flow_differs_by_direction_and_field() {
        let k = key(v4([10, 0, 0, 1]), v4([10, 0, 0, 2]), 1000, 80, 6);
        let rev = key(k.dst, k.src, k.dport, k.sport, k.proto);
        assert_ne!(hash_flow(&k), hash_flow(&rev));
        assert_ne!(hash_flow(&k), hash_flow(&FlowKey { proto: 17, ..k }));
        assert_eq!(hash_flow(&k), k.hash());
    }

    #[test]
    fn hash_flow_v4_equals_hash_flow_of_the_mapped_key() {
        let mut rng = Rng(4);
        for _ in 0..10_000 {
            let r = rng.next();
            let (a, b) = ((r as u32).to_be_bytes(), ((r >> 32) as u32).to_be_bytes());
            let q = rng.next();
            let (sp, dp, pr) = (q as u16, (q >> 16) as u16, (q >> 32) as u8);
            assert_eq!(
                hash_flow_v4(a, b, sp, dp, pr),
                hash_flow(&key(v4(a), v4(b), sp, dp, pr))
            );
        }
        // The pinned vector, through the IPv4 path.
        assert_eq!(
            hash_flow_v4([10, 0, 0, 1], [192, 168, 5, 188], 40000, 80, 6),
            0x6fb7_e6a5_0131_356f
        );
    }

    #[test]
    fn hash_flow_parts_equals_hash_flow() {
        let mut rng = Rng(42);
        for _ in 0..1000 {
            let k = rng.key();
            assert_eq!(
                hash_flow_parts(&k.src, &k.dst, k.sport, k.dport, k.proto),
                hash_flow(&k)
            );
        }
    }
}
