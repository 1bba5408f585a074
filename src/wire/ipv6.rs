//! IPv6 header view (RFC 8200) with a bounded extension-header walk.
//!
//! `Packet::new_checked` guarantees: version 6, the 40-byte header fits, and
//! `40 + payload_len <= buffer length` (a longer buffer is Ethernet padding; a
//! `payload_len` of 0 is taken literally, jumbograms are not supported).
//! [`Packet::upper_layer`] walks hop-by-hop, routing, fragment, destination-options and
//! AH headers, at most [`MAX_EXT_HEADERS`] of them, never reading past `40 + payload_len`,
//! and stops at ESP, no-next-header, or a non-first fragment.

use super::checksum;
pub use super::Error;
use super::{array, be16, be32, byte, need_space, put16, put32, put_byte, put_bytes};
use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 40;
/// The extension-header walk gives up after this many headers.
pub const MAX_EXT_HEADERS: usize = 8;

pub const NH_HOP_BY_HOP: u8 = 0;
pub const NH_TCP: u8 = 6;
pub const NH_UDP: u8 = 17;
pub const NH_ROUTING: u8 = 43;
pub const NH_FRAGMENT: u8 = 44;
pub const NH_ESP: u8 = 50;
pub const NH_AH: u8 = 51;
pub const NH_ICMPV6: u8 = 58;
pub const NH_NO_NEXT: u8 = 59;
pub const NH_DEST_OPTS: u8 = 60;
pub const NH_VRRP: u8 = 112;

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// Fragment header contents found by [`Packet::upper_layer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment offset in bytes.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
    pub ident: u32,
}

/// Where the upper-layer header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpperLayer {
    /// The last next-header value (TCP, UDP, ICMPv6, ..., or ESP/59, or whatever follows
    /// a non-first fragment header).
    pub protocol: u8,
    /// Offset from the start of the IPv6 header; always `<= 40 + payload_len`.
    pub offset: usize,
    /// Set if a fragment header was crossed. If its `offset != 0` the walk stopped there
    /// and the bytes at `offset` are not an upper-layer header.
    pub fragment: Option<Fragment>,
}

/// A view over an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Validates the version and that the payload length fits the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated("ipv6 header"));
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed("ipv6 version"));
        }
        if HEADER_LEN + be16(b, field::PAYLOAD_LEN) as usize > b.len() {
            return Err(Error::Truncated("ipv6 payload length"));
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), 0) >> 4
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((be32(self.buffer.as_ref(), field::VER_TC_FL) >> 20) & 0xff) as u8
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FL) & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN)
    }

    /// 40 + payload_len: the packet without Ethernet padding.
    #[inline]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }

    #[inline]
    pub fn next_header(&self) -> u8 {
        byte(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        byte(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::DST)
    }

    #[inline]
    pub fn src_ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src_addr())
    }

    #[inline]
    pub fn dst_ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst_addr())
    }

    /// Everything after the fixed header, bounded by `payload_len`.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.total_len())
            .unwrap_or(&[])
    }

    /// Bytes from `offset` (from the start of the IPv6 header, e.g.
    /// [`UpperLayer::offset`]) to the end of the payload; empty if out of range.
    #[inline]
    pub fn data_from(&self, offset: usize) -> &[u8] {
        self.buffer
            .as_ref()
            .get(offset..self.total_len())
            .unwrap_or(&[])
    }

    /// Pseudo-header partial sum for an upper layer of `len` bytes with `next_header`.
    #[inline]
    pub fn pseudo_sum(&self, next_header: u8, len: u32) -> u32 {
        checksum::pseudo_v6(self.src_addr(), self.dst_addr(), next_header, len)
    }

    /// Walks the extension headers to the upper-layer protocol.
    ///
    /// Errors: [`Error::Truncated`] if a header runs past the payload,
    /// [`Error::TooManyExtensions`] after [`MAX_EXT_HEADERS`] headers.
    pub fn upper_layer(&self) -> Result<UpperLayer, Error> {
        let b = self.buffer.as_ref();
        let end = self.total_len().min(b.len());
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut fragment = None;
        for _ in 0..=MAX_EXT_HEADERS {
            let len = match nh {
                NH_HOP_BY_HOP | NH_ROUTING | NH_DEST_OPTS => {
                    if off + 2 > end {
                        return Err(Error::Truncated("ipv6 extension header"));
                    }
                    (b[off + 1] as usize + 1) * 8
                }
                NH_AH => {
                    if off + 2 > end {
                        return Err(Error::Truncated("ipv6 authentication header"));
                    }
                    (b[off + 1] as usize + 2) * 4
                }
                NH_FRAGMENT => 8,
                _ => {
                    return Ok(UpperLayer {
                        protocol: nh,
                        offset: off,
                        fragment,
                    })
                }
            };
            if off + len > end {
                return Err(Error::Truncated("ipv6 extension header"));
            }
            let next = b[off];
            if nh == NH_FRAGMENT {
                let fo = be16(b, off + 2);
                let frag = Fragment {
                    offset: fo & 0xfff8,
                    more: fo & 1 != 0,
                    ident: be32(b, off + 4),
                };
                fragment = Some(frag);
                if frag.offset != 0 {
                    return Ok(UpperLayer {
                        protocol: next,
                        offset: off + len,
                        fragment,
                    });
                }
            }
            nh = next;
            off += len;
        }
        Err(Error::TooManyExtensions)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let v = be32(self.buffer.as_ref(), field::VER_TC_FL);
        put32(
            self.buffer.as_mut(),
            field::VER_TC_FL,
            (v & 0xf00f_ffff) | ((tc as u32) << 20),
        );
    }

    #[inline]
    pub fn set_flow_label(&mut self, fl: u32) {
        let v = be32(self.buffer.as_ref(), field::VER_TC_FL);
        put32(
            self.buffer.as_mut(),
            field::VER_TC_FL,
            (v & 0xfff0_0000) | (fl & 0x000f_ffff),
        );
    }

    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::PAYLOAD_LEN, v);
    }

    #[inline]
    pub fn set_next_header(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::NEXT_HEADER, v);
    }

    /// IPv6 has no header checksum, so this is a plain write.
    #[inline]
    pub fn set_hop_limit(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::HOP_LIMIT, v);
    }

    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 16]) {
        put_bytes(self.buffer.as_mut(), field::SRC, &a);
    }

    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 16]) {
        put_bytes(self.buffer.as_mut(), field::DST, &a);
    }

    /// The payload (bounded by `payload_len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let t = self.total_len();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..t)
            .unwrap_or(&mut [])
    }
}

/// Writes a 40-byte IPv6 header (traffic class and flow label 0); returns 40.
pub fn emit(
    buf: &mut [u8],
    src: [u8; 16],
    dst: [u8; 16],
    next_header: u8,
    hop_limit: u8,
    payload_len: usize,
) -> Result<usize, Error> {
    need_space(buf, HEADER_LEN)?;
    if payload_len > u16::MAX as usize {
        return Err(Error::Malformed("ipv6 payload length > 65535"));
    }
    let h = &mut buf[..HEADER_LEN];
    put32(h, field::VER_TC_FL, 6 << 28);
    let mut p = Packet::new_unchecked(h);
    p.set_payload_len(payload_len as u16);
    p.set_next_header(next_header);
    p.set_hop_limit(hop_limit);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const DST: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];

    /// Builds an IPv6 packet whose payload is the concatenation of `exts` (each with its
    /// own next-header byte already set) and `upper`.
    fn build(first_nh: u8, exts: &[Vec<u8>], upper: &[u8]) -> Vec<u8> {
        let mut payload = Vec::new();
        for e in exts {
            payload.extend_from_slice(e);
        }
        payload.extend_from_slice(upper);
        let mut b = vec![0u8; 40];
        emit(&mut b, SRC, DST, first_nh, 64, payload.len()).unwrap();
        b.extend_from_slice(&payload);
        b
    }

    fn opts(next: u8, units: u8) -> Vec<u8> {
        let mut v = vec![0u8; (units as usize + 1) * 8];
        v[0] = next;
        v[1] = units;
        v
    }

    fn frag(next: u8, offset: u16, more: bool, ident: u32) -> Vec<u8> {
        let mut v = vec![next, 0];
        v.extend_from_slice(&(offset | more as u16).to_be_bytes());
        v.extend_from_slice(&ident.to_be_bytes());
        v
    }

    #[test]
    fn parse_plain() {
        let mut b = build(NH_UDP, &[], &[1, 2, 3, 4, 5, 6, 7, 8]);
        b[1] = 0xab; // flow label bits
        b[0] = 0x6c; // traffic class high nibble 0xc
        b.extend_from_slice(&[0; 6]); // padding
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xca);
        assert_eq!(p.flow_label(), 0xb0000);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), NH_UDP);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), SRC);
        assert_eq!(p.dst_ipv6(), "ff02::12".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            p.upper_layer(),
            Ok(UpperLayer {
                protocol: NH_UDP,
                offset: 40,
                fragment: None
            })
        );
        let e = etherparse::Ipv6HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.traffic_class(), p.traffic_class());
        assert_eq!(e.flow_label().value(), p.flow_label());
    }

    #[test]
    fn walks_extension_chain() {
        let mut ah = vec![NH_TCP, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]; // (1+2)*4 = 12 bytes
        ah.truncate(12);
        let exts = vec![
            opts(NH_ROUTING, 0),
            opts(NH_FRAGMENT, 1),
            frag(NH_DEST_OPTS, 0, true, 0xdeadbeef),
            opts(NH_AH, 2),
            ah,
        ];
        let tcp = [0u8; 20];
        let b = build(NH_HOP_BY_HOP, &exts, &tcp);
        let p = Packet::new_checked(&b[..]).unwrap();
        let u = p.upper_layer().unwrap();
        assert_eq!(u.protocol, NH_TCP);
        assert_eq!(u.offset, 40 + 8 + 16 + 8 + 24 + 12);
        assert_eq!(
            u.fragment,
            Some(Fragment {
                offset: 0,
                more: true,
                ident: 0xdeadbeef
            })
        );
        assert_eq!(p.data_from(u.offset).len(), 20);
        // etherparse agrees on where TCP starts.
        let s = etherparse::SlicedPacket::from_ip(&b).unwrap();
        if let Some(etherparse::NetSlice::Ipv6(v6)) = s.net {
            assert_eq!(v6.payload().ip_number, etherparse::IpNumber(NH_TCP));
            assert_eq!(v6.payload().payload.len(), 20);
        } else {
            panic!("etherparse did not see IPv6");
        }
    }

    #[test]
    fn non_first_fragment_stops() {
        let b = build(NH_FRAGMENT, &[frag(NH_UDP, 1448, false, 7)], &[0u8; 3]);
        let u = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert_eq!(u.protocol, NH_UDP);
        assert_eq!(u.offset, 48);
        assert_eq!(
            u.fragment,
            Some(Fragment {
                offset: 1448,
                more: false,
                ident: 7
            })
        );
    }

    #[test]
    fn esp_and_no_next_stop() {
        for nh in [NH_ESP, NH_NO_NEXT] {
            let b = build(NH_DEST_OPTS, &[opts(nh, 0)], &[0xff; 16]);
            let u = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
            assert_eq!((u.protocol, u.offset), (nh, 48));
        }
    }

    #[test]
    fn chain_limits() {
        // Exactly MAX_EXT_HEADERS is fine, one more is too many.
        let mk = |n: usize| {
            let exts: Vec<Vec<u8>> = (0..n)
                .map(|i| opts(if i + 1 == n { NH_UDP } else { NH_DEST_OPTS }, 0))
                .collect();
            build(NH_DEST_OPTS, &exts, &[0u8; 8])
        };
        let b = mk(MAX_EXT_HEADERS);
        let u = Packet::new_checked(&b[..]).unwrap().upper_layer().unwrap();
        assert_eq!(u.protocol, NH_UDP);
        assert_eq!(u.offset, 40 + 8 * MAX_EXT_HEADERS);
        let b = mk(MAX_EXT_HEADERS + 1);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().upper_layer(),
            Err(Error::TooManyExtensions)
        );
        // A long run of fragment headers (a "loop") is bounded too.
        let exts: Vec<Vec<u8>> = (0..50).map(|_| frag(NH_FRAGMENT, 0, true, 1)).collect();
        let b = build(NH_FRAGMENT, &exts, &[]);
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap().upper_layer(),
            Err(Error::TooManyExtensions)
        );
    }

    #[test]
    fn chain_running_off_the_end() {
        // Header length byte claims more than is there.
        let b = build(NH_HOP_BY_HOP, &[opts(NH_UDP, 0)], &[]);
        let mut bad = b.clone();
        bad[41] = 3;
        assert!(matches!(
            Packet::new_checked(&bad[..]).unwrap().upper_layer(),
            Err(Error::Truncated(_))
        ));
        // Cut at every length inside the extension header (payload_len adjusted).
        for cut in 0..8usize {
            let mut c = b[..40 + cut].to_vec();
            c[4..6].copy_from_slice(&(cut as u16).to_be_bytes());
            assert!(
                matches!(
                    Packet::new_checked(&c[..]).unwrap().upper_layer(),
                    Err(Error::Truncated(_))
                ),
                "cut {cut}"
            );
        }
        // Padding after payload_len is not read: header bytes in the padding don't count.
        let mut c = b.clone();
        c[4..6].copy_from_slice(&4u16.to_be_bytes());
        assert!(Packet::new_checked(&c[..]).unwrap().upper_layer().is_err());
        // Truncated fragment and AH headers.
        let b = build(NH_FRAGMENT, &[], &[0u8; 7]);
        assert!(Packet::new_checked(&b[..]).unwrap().upper_layer().is_err());
        let b = build(NH_AH, &[], &[NH_TCP, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(Packet::new_checked(&b[..]).unwrap().upper_layer().is_err());
        let b = build(NH_AH, &[], &[NH_TCP]);
        assert!(Packet::new_checked(&b[..]).unwrap().upper_layer().is_err());
    }

    #[test]
    fn rejects_malformed() {
        let b = build(NH_UDP, &[], &[0u8; 8]);
        for n in 0..40 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("ipv6 header"))
            );
        }
        for n in 40..48 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("ipv6 payload length"))
            );
        }
        let mut v = b.clone();
        v[0] = 0x40;
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Malformed("ipv6 version"))
        );
    }

    #[test]
    fn setters_roundtrip() {
        let mut b = build(NH_UDP, &[], &[0u8; 8]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_traffic_class(0xc0);
        p.set_flow_label(0xfffff);
        p.set_traffic_class(0x12);
        assert_eq!(
            (p.version(), p.traffic_class(), p.flow_label()),
            (6, 0x12, 0xfffff)
        );
        p.set_flow_label(0x12345);
        assert_eq!((p.traffic_class(), p.flow_label()), (0x12, 0x12345));
        p.set_hop_limit(255);
        p.set_next_header(NH_VRRP);
        p.set_src_addr(DST);
        p.set_dst_addr(SRC);
        p.set_payload_len(4);
        assert_eq!(
            (p.hop_limit(), p.next_header(), p.src_addr(), p.dst_addr()),
            (255, NH_VRRP, DST, SRC)
        );
        assert_eq!(p.payload_mut().len(), 4);
        assert!(emit(&mut b[..39], SRC, DST, 0, 0, 0).is_err());
    }
}
