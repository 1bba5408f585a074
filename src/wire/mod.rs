//! Packet views (smoltcp style): zero-copy, bounds-checked once by `new_checked`, never
//! panicking afterwards; setters rewrite in place.
//!
//! Every view is a thin wrapper `Packet<T: AsRef<[u8]>>` (or `Frame<T>` for Ethernet)
//! over a borrowed or owned buffer. `new_checked` validates every length the accessors
//! rely on, so after it succeeds no getter or setter can index out of bounds; getters
//! return plain values (`u16`, `[u8; 4]`, ...) and never allocate. Checksums are
//! ones-complement (RFC 1071) and can be updated incrementally (RFC 1624), see
//! [`checksum`]. Emit helpers (`emit`, `build_*`) write into a caller-provided buffer and
//! return [`Error::BufferTooSmall`] rather than panic when it is too short.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vrrp;

/// Errors of every view and emitter in `wire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header (or a length field) says it should.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field holds a value the format does not allow (version, IHL, data offset, ...).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Well-formed, but not something this view handles (e.g. ARP for a non-IPv4 protocol).
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// An IPv6 extension-header chain longer than the walk allows.
    #[error("too many IPv6 extension headers")]
    TooManyExtensions,
    /// The output buffer of an emitter is too short.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
}

/// Fails with [`Error::BufferTooSmall`] unless `buf` holds at least `need` bytes.
#[inline]
pub(crate) fn need_space(buf: &[u8], need: usize) -> Result<(), Error> {
    if buf.len() < need {
        Err(Error::BufferTooSmall {
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Big-endian u16 at `off`; 0 if out of range (callers check lengths first).
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Big-endian u32 at `off`; 0 if out of range (callers check lengths first).
#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Copies `N` bytes at `off`; zeros if out of range (callers check lengths first).
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(off..off + N) {
        out.copy_from_slice(s);
    }
    out
}

/// Writes `v` big-endian at `off`; does nothing if out of range.
#[inline]
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes `v` big-endian at `off`; does nothing if out of range.
#[inline]
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Copies `v` to `off`; does nothing if out of range.
#[inline]
pub(crate) fn put_bytes(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(s) = b.get_mut(off..off + v.len()) {
        s.copy_from_slice(v);
    }
}

/// Byte at `off`; 0 if out of range.
#[inline]
pub(crate) fn byte(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Writes the byte at `off`; does nothing if out of range.
#[inline]
pub(crate) fn put_byte(b: &mut [u8], off: usize, v: u8) {
    if let Some(x) = b.get_mut(off) {
        *x = v;
    }
}

#[cfg(test)]
mod fuzz {
    //! Random bytes into every `new_checked` and, when it succeeds, every accessor and
    //! setter: nothing may panic. Also unchecked views, which must stay in bounds too.
    use super::*;
    use proptest::prelude::*;

    fn all_ipv4(p: &ipv4::Packet<&mut [u8]>) -> u64 {
        let mut h = p.version() as u64 + p.header_len() as u64 + p.dscp_ecn() as u64;
        h += p.total_len() as u64 + p.ident() as u64 + p.dont_frag() as u64;
        h += p.more_frags() as u64 + p.frag_offset() as u64 + p.is_fragment() as u64;
        h += p.ttl() as u64 + p.protocol() as u64 + p.checksum() as u64;
        h += p.src_addr()[0] as u64 + p.dst_addr()[3] as u64;
        h += u32::from(p.src_ipv4()) as u64 + u32::from(p.dst_ipv4()) as u64;
        h += p.options().len() as u64 + p.payload().len() as u64 + p.header().len() as u64;
        h += p.verify_checksum() as u64 + p.pseudo_sum() as u64;
        h
    }

    fn exercise(data: &[u8]) {
        let mut buf = data.to_vec();
        if let Ok(mut f) = ethernet::Frame::new_checked(&mut buf[..]) {
            let _ = (
                f.dst(),
                f.src(),
                f.vlan(),
                f.tci(),
                f.ethertype(),
                f.header_len(),
            );
            let _ = (f.outer_ethertype(), f.is_tagged(), f.payload().len());
            f.set_dst([1; 6]);
            f.set_src([2; 6]);
            f.set_ethertype(0x0800);
            f.set_vlan(5);
            assert!(f.payload_mut().len() + f.header_len() == data.len());
        }
        let mut buf = data.to_vec();
        if let Ok(mut p) = arp::Packet::new_checked(&mut buf[..]) {
            let _ = (
                p.op(),
                p.sender_hw(),
                p.sender_ip(),
                p.target_hw(),
                p.target_ip(),
            );
            let _ = (p.sender_ipv4(), p.target_ipv4(), p.is_gratuitous());
            p.set_op(2);
            p.set_target_ip([1, 2, 3, 4]);
            assert_eq!(p.target_ip(), [1, 2, 3, 4]);
        }
        let mut buf = data.to_vec();
        if let Ok(mut p) = ipv4::Packet::new_checked(&mut buf[..]) {
            let _ = all_ipv4(&p);
            assert!(p.header_len() + p.payload().len() == p.total_len() as usize);
            let _ = p.decrement_ttl();
            p.set_ttl(7);
            p.set_src_addr_incremental([9; 4]);
            p.set_dst_addr_incremental([8; 4]);
            p.options_mut().fill(1);
            p.payload_mut().fill(2);
            p.fill_checksum();
            assert!(p.verify_checksum());
            p.set_ttl(200);
            assert!(p.verify_checksum());
            p.set_frag(true, true, 8);
            p.set_total_len(0xffff); // lie after the check: still no panic
            let _ = all_ipv4(&p);
        }
        let mut buf = data.to_vec();
        if let Ok(mut p) = ipv6::Packet::new_checked(&mut buf[..]) {
            let _ = (
                p.version(),
                p.traffic_class(),
                p.flow_label(),
                p.payload_len(),
            );
            let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr());
            let _ = (
                p.src_ipv6(),
                p.dst_ipv6(),
                p.payload().len(),
                p.pseudo_sum(6, 9),
            );
            if let Ok(u) = p.upper_layer() {
                assert!(u.offset <= p.total_len());
                let _ = p.data_from(u.offset).len();
            }
            let _ = p.data_from(usize::MAX).len();
            p.set_traffic_class(1);
            p.set_flow_label(2);
            p.set_hop_limit(3);
            p.set_payload_len(0xffff);
            let _ = p.upper_layer();
            let _ = p.payload_mut().len();
        }
        let mut buf = data.to_vec();
        if let Ok(mut p) = tcp::Packet::new_checked(&mut buf[..]) {
            let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number());
            let _ = (
                p.header_len(),
                p.flags(),
                p.syn(),
                p.ack(),
                p.fin(),
                p.rst(),
                p.psh(),
            );
            let _ = (
                p.window(),
                p.checksum(),
                p.urgent(),
                p.options().len(),
                p.payload(),
            );
            let _ = p.verify_checksum_v6([1; 16], [2; 16]);
            if data.len() <= 0xffff {
                p.fill_checksum_v4([1; 4], [2; 4]);
                assert!(p.verify_checksum_v4([1; 4], [2; 4]));
            }
            p.set_flags(0xff);
            let _ = p.payload_mut().len();
        }
        let _ = tcp::ports(data);
        let mut buf = data.to_vec();
        if let Ok(mut p) = udp::Packet::new_checked(&mut buf[..]) {
            let _ = (
                p.src_port(),
                p.dst_port(),
                p.len(),
                p.is_empty(),
                p.checksum(),
            );
            let _ = p.payload().len();
            p.fill_checksum_v6([3; 16], [4; 16]);
            assert!(p.verify_checksum_v6([3; 16], [4; 16]));
            p.fill_checksum_v4([1; 4], [2; 4]);
            assert!(p.verify_checksum_v4([1; 4], [2; 4]));
            p.set_len(0xffff);
            let _ = (p.payload().len(), p.verify_checksum_v4([0; 4], [0; 4]));
            let _ = p.payload_mut().len();
        }
        let mut buf = data.to_vec();
        if let Ok(mut p) = icmp::Packet::new_checked(&mut buf[..]) {
            let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header());
            let _ = (p.echo_ident(), p.echo_seq(), p.payload().len());
            p.fill_checksum_v4();
            assert!(p.verify_checksum_v4());
            p.fill_checksum_v6([1; 16], [2; 16]);
            assert!(p.verify_checksum_v6([1; 16], [2; 16]));
        }
        if let Ok(ns) = icmp::NeighborSolicit::new_checked(data) {
            let _ = (ns.target(), ns.source_lladdr());
        }
        if let Ok(na) = icmp::NeighborAdvert::new_checked(data) {
            let _ = (na.target(), na.target_lladdr(), na.flags(), na.router());
            let _ = (na.solicited(), na.override_flag());
        }
        for v6 in [false, true] {
            let mut buf = data.to_vec();
            let r = if v6 {
                vrrp::Packet::new_checked_v6(&mut buf[..])
            } else {
                vrrp::Packet::new_checked(&mut buf[..])
            };
            if let Ok(mut p) = r {
                let _ = (
                    p.version(),
                    p.kind(),
                    p.vrid(),
                    p.priority(),
                    p.addr_count(),
                );
                let _ = (
                    p.auth_type(),
                    p.advert_interval_cs(),
                    p.checksum(),
                    p.auth_data(),
                );
                let n4 = p.addresses_v4().count();
                let n6 = p.addresses_v6().count();
                if v6 {
                    assert_eq!(n6, p.addr_count() as usize);
                } else {
                    assert_eq!(n4, p.addr_count() as usize);
                }
                let _ = p.verify_checksum_v2();
                let _ = p.verify_checksum_v3_v6([0; 16], [0; 16]);
                p.fill_checksum_v3_v4([1; 4], [2; 4]);
                assert!(p.verify_checksum_v3_v4([1; 4], [2; 4]));
            }
        }
        // Unchecked views must not panic either.
        let _ = all_ipv4(&ipv4::Packet::new_unchecked(&mut data.to_vec()[..]));
        let v = vrrp::Packet::new_unchecked(data);
        let _ = (
            v.addresses_v4().count(),
            v.addresses_v6().count(),
            v.auth_data(),
        );
        let t = tcp::Packet::new_unchecked(data);
        let _ = (
            t.options().len(),
            t.payload().len(),
            t.verify_checksum_v4([0; 4], [0; 4]),
        );
        let f = ethernet::Frame::new_unchecked(data);
        let _ = (f.ethertype(), f.payload().len(), f.vlan());
        let _ = ipv6::Packet::new_unchecked(data).upper_layer();
    }

    /// Random bytes biased towards plausible headers so the checks sometimes pass.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(any::<u8>(), 0..160),
            prop_oneof![
                Just(None),
                Just(Some(0x45u8)),
                Just(Some(0x46)),
                Just(Some(0x60)),
                Just(Some(0x21)),
                Just(Some(0x31)),
                Just(Some(0x50)),
            ],
            any::<u8>(),
        )
            .prop_map(|(mut v, first, small)| {
                if let Some(b) = first {
                    if !v.is_empty() {
                        v[0] = b;
                    }
                    // Keep length fields small enough to fit sometimes.
                    if v.len() > 5 {
                        v[2] = 0;
                        v[3] = small % 8;
                        v[4] = 0;
                        v[5] = small % 64;
                    }
                }
                v
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn no_view_panics(data in bytes()) {
            exercise(&data);
        }

        #[test]
        fn extension_chains_never_panic(
            nh in prop_oneof![Just(0u8), Just(43), Just(44), Just(51), Just(60), any::<u8>()],
            raw in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            // Bias bytes towards extension-header numbers and small lengths so chains
            // get long and run off the end in many ways.
            const NH: [u8; 6] = [0, 43, 44, 51, 60, 6];
            let body: Vec<u8> = raw
                .iter()
                .map(|&x| if x % 3 == 0 { NH[(x as usize / 3) % 6] } else { x % 8 })
                .collect();
            let mut b = vec![0u8; 40];
            ipv6::emit(&mut b, [1; 16], [2; 16], nh, 64, body.len()).unwrap();
            b.extend_from_slice(&body);
            let p = ipv6::Packet::new_checked(&b[..]).unwrap();
            match p.upper_layer() {
                Ok(u) => prop_assert!(u.offset <= b.len()),
                Err(e) => prop_assert!(matches!(e, Error::Truncated(_) | Error::TooManyExtensions)),
            }
        }
    }
}
