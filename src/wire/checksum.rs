//! Internet checksum (RFC 1071) helpers and RFC 1624 incremental updates.
//!
//! Partial sums are `u32` values that are always folded to at most 16 significant bits
//! by [`sum`], [`pseudo_v4`] and [`pseudo_v6`], so a handful of them can be added with
//! `+` (or [`combine`]) without overflow before [`finish`] folds and complements the
//! total. Nothing here allocates or panics; odd-length data is padded with a zero byte as
//! the RFC says.

/// Folds a 32-bit ones-complement accumulator to 16 bits (not complemented).
#[inline]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

#[inline]
fn fold64(mut sum: u64) -> u32 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    fold(sum as u32) as u32
}

/// Ones-complement sum of `data` as big-endian 16-bit words, folded to 16 bits.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u16::from_be_bytes([p[0], p[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        acc += (*last as u64) << 8;
    }
    fold64(acc)
}

/// Adds two partial sums (each at most 16 bits wide after folding).
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    fold(a + b) as u32
}

/// Folds and complements a partial sum into the checksum field value.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The Internet checksum of `data` (what goes in the checksum field when the field
/// itself is zero inside `data`).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// True if `data`, including its checksum field, sums to all-ones (a valid checksum).
#[inline]
pub fn verify(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

/// Partial sum of the IPv4 pseudo-header (RFC 793/768): addresses, protocol and the
/// upper-layer length.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let acc = u16::from_be_bytes([src[0], src[1]]) as u32
        + u16::from_be_bytes([src[2], src[3]]) as u32
        + u16::from_be_bytes([dst[0], dst[1]]) as u32
        + u16::from_be_bytes([dst[2], dst[3]]) as u32
        + proto as u32
        + len as u32;
    fold(acc) as u32
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, 32-bit upper-layer
/// length and next header.
#[inline]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, len: u32) -> u32 {
    let acc = sum(&src) + sum(&dst) + (len >> 16) + (len & 0xffff) + next_header as u32;
    fold(acc) as u32
}

/// RFC 1624 eqn. 3: the new checksum after one 16-bit word of the covered data changes
/// from `old` to `new`: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let acc = (!csum) as u32 + (!old) as u32 + new as u32;
    !fold(acc)
}

/// [`update16`] for a 32-bit field (e.g. an IPv4 address or a TCP sequence number).
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    let acc =
        (!csum) as u32 + (!(old >> 16) & 0xffff) + (!old & 0xffff) + (new >> 16) + (new & 0xffff);
    !fold(acc)
}

/// [`update16`] for a run of bytes (e.g. a 16-byte IPv6 address) that changed from `old`
/// to `new`. Both must have the same length and start at an even offset of the covered
/// data; if the lengths differ the shorter is treated as zero-padded.
#[inline]
pub fn update_bytes(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let acc = (!csum) as u32 + (!fold(sum(old))) as u32 + sum(new);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
    }

    /// A classic IPv4 header (Wikipedia "IPv4 header checksum") with checksum b861.
    #[test]
    fn ipv4_header_vector() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert!(verify(&h));
        h[0] ^= 1;
        assert!(!verify(&h));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(&[0x12, 0x34, 0x56]), sum(&[0x12, 0x34, 0x56, 0x00]));
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn chunking_matches_wordwise() {
        // Compare the 4-byte-chunk implementation against a plain 16-bit loop.
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7919 % 251) as u8).collect();
        for len in 0..data.len() {
            let d = &data[..len];
            let mut acc: u32 = 0;
            for i in (0..len).step_by(2) {
                let hi = d[i] as u32;
                let lo = if i + 1 < len { d[i + 1] as u32 } else { 0 };
                acc += (hi << 8) | lo;
                acc = (acc & 0xffff) + (acc >> 16);
            }
            assert_eq!(fold(sum(d)), fold(acc), "len {len}");
        }
    }

    #[test]
    fn all_ones_data() {
        let d = [0xffu8; 64];
        assert_eq!(fold(sum(&d)), 0xffff);
        // A buffer bigger than 2^17 words still folds correctly (no overflow).
        let big = vec![0xffu8; 300_000];
        assert_eq!(fold(sum(&big)), 0xffff);
    }

    #[test]
    fn pseudo_v4_matches_bytes() {
        let src = [10, 0, 0, 1];
        let dst = [192, 168, 1, 2];
        let bytes = [10, 0, 0, 1, 192, 168, 1, 2, 0, 6, 0x05, 0xdc];
        assert_eq!(fold(pseudo_v4(src, dst, 6, 1500)), fold(sum(&bytes)));
    }

    #[test]
    fn pseudo_v6_matches_bytes() {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        for i in 0..16 {
            src[i] = 0xf0 + i as u8;
            dst[i] = i as u8 * 3;
        }
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src);
        bytes.extend_from_slice(&dst);
        bytes.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(
            fold(pseudo_v6(src, dst, 58, 0x0001_0203)),
            fold(sum(&bytes))
        );
    }

    /// Deterministic pseudo-random bytes for the incremental-update tests.
    fn lcg_bytes(seed: u32, n: usize) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    }

    #[test]
    fn update16_matches_recompute() {
        for seed in 0..500u32 {
            let mut d = lcg_bytes(seed, 40);
            d[10] = 0;
            d[11] = 0;
            let c = checksum(&d);
            d[10..12].copy_from_slice(&c.to_be_bytes());
            let w = (seed as usize % 19) * 2;
            let w = if w == 10 { 12 } else { w };
            let old = u16::from_be_bytes([d[w], d[w + 1]]);
            let new = (seed.wrapping_mul(40503) >> 3) as u16;
            d[w..w + 2].copy_from_slice(&new.to_be_bytes());
            let inc = update16(c, old, new);
            d[10..12].copy_from_slice(&inc.to_be_bytes());
            assert!(verify(&d), "seed {seed}");
        }
    }

    #[test]
    fn update32_and_bytes_match_recompute() {
        for seed in 0..300u32 {
            let mut d = lcg_bytes(seed, 60);
            d[2] = 0;
            d[3] = 0;
            let c = checksum(&d);
            d[2..4].copy_from_slice(&c.to_be_bytes());
            let old32 = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
            let new32 = seed.wrapping_mul(2_654_435_761);
            d[8..12].copy_from_slice(&new32.to_be_bytes());
            let c2 = update32(c, old32, new32);
            d[2..4].copy_from_slice(&c2.to_be_bytes());
            assert!(verify(&d), "update32 seed {seed}");

            let old: [u8; 16] = d[20..36].try_into().unwrap();
            let new: [u8; 16] = lcg_bytes(seed + 7, 16).try_into().unwrap();
            d[20..36].copy_from_slice(&new);
            let c3 = update_bytes(c2, &old, &new);
            d[2..4].copy_from_slice(&c3.to_be_bytes());
            assert!(verify(&d), "update_bytes seed {seed}");
            assert_eq!(c3, {
                let mut z = d.clone();
                z[2] = 0;
                z[3] = 0;
                checksum(&z)
            });
        }
    }

    /// RFC 1624 §4 worked example: HC=0xdd2f, m=0x5555 -> m'=0x3285 gives HC'=0x0000.
    #[test]
    fn rfc1624_example() {
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }
}
