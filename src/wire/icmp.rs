//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) views, and IPv6 neighbour discovery
//! (RFC 4861) for the two messages a director needs: parsing Neighbor Solicitations and
//! Advertisements, and building the unsolicited NA keepalived sends on a transition.
//!
//! ICMPv4 and ICMPv6 share the 8-byte header layout (type, code, checksum, 4 bytes of
//! rest-of-header), so one [`Packet`] view serves both: `*_v4` checksum methods cover
//! the message only, `*_v6` add the IPv6 pseudo-header. `new_checked` guarantees 8 bytes;
//! the ND views guarantee their 24-byte fixed part; option walks are bounded by the
//! buffer and stop at a zero-length option.

use super::checksum;
use super::ethernet::{Frame, Mac, ETHERTYPE_IPV6, HEADER_LEN as ETH_LEN};
use super::ipv6::{self, NH_ICMPV6};
pub use super::Error;
use super::{array, be16, byte, need_space, put16, put_byte, put_bytes};

pub const HEADER_LEN: usize = 8;

pub const ICMPV4_ECHO_REPLY: u8 = 0;
pub const ICMPV4_DEST_UNREACH: u8 = 3;
pub const ICMPV4_ECHO_REQUEST: u8 = 8;
pub const ICMPV4_TIME_EXCEEDED: u8 = 11;

pub const ICMPV6_DEST_UNREACH: u8 = 1;
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub const ICMPV6_TIME_EXCEEDED: u8 = 3;
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
pub const ICMPV6_ECHO_REPLY: u8 = 129;
pub const ICMPV6_ROUTER_SOLICIT: u8 = 133;
pub const ICMPV6_ROUTER_ADVERT: u8 = 134;
pub const ICMPV6_NEIGHBOR_SOLICIT: u8 = 135;
pub const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;

/// ND option: source link-layer address.
pub const NDOPT_SOURCE_LLADDR: u8 = 1;
/// ND option: target link-layer address.
pub const NDOPT_TARGET_LLADDR: u8 = 2;

/// NA flags (first byte of the rest-of-header).
pub const NA_FLAG_ROUTER: u8 = 0x80;
pub const NA_FLAG_SOLICITED: u8 = 0x40;
pub const NA_FLAG_OVERRIDE: u8 = 0x20;

/// ff02::1, all nodes.
pub const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// 33:33:00:00:00:01, the Ethernet multicast address of ff02::1.
pub const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];

/// Length of an NS/NA without options.
pub const ND_LEN: usize = 24;
/// Length of the frame [`build_unsolicited_na`] writes (14 + 40 + 24 + 8).
pub const NA_FRAME_LEN: usize = ETH_LEN + ipv6::HEADER_LEN + ND_LEN + 8;

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const ND_FLAGS: usize = 4;
    pub const ND_TARGET: usize = 8;
    pub const ND_OPTIONS: usize = 24;
}

/// A view over an ICMPv4 or ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks the 8-byte header fits.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated("icmp header"));
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn msg_type(&self) -> u8 {
        byte(self.buffer.as_ref(), field::TYPE)
    }

    #[inline]
    pub fn code(&self) -> u8 {
        byte(self.buffer.as_ref(), field::CODE)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Bytes 4..8 (echo identifier and sequence, MTU, NA flags, ...).
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::REST)
    }

    /// Echo identifier (bytes 4..6).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    /// Echo sequence number (bytes 6..8).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    /// Everything after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }

    /// ICMPv4: the checksum covers the message only.
    #[inline]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }

    /// ICMPv6: the checksum includes the IPv6 pseudo-header.
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        checksum::fold(checksum::pseudo_v6(src, dst, NH_ICMPV6, b.len() as u32) + checksum::sum(b))
            == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_msg_type(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::TYPE, v);
    }
    #[inline]
    pub fn set_code(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::CODE, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    #[inline]
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        put_bytes(self.buffer.as_mut(), field::REST, &v);
    }

    #[inline]
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let c = checksum::finish(
            checksum::pseudo_v6(src, dst, NH_ICMPV6, b.len() as u32) + checksum::sum(b),
        );
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

/// Finds the first ND option of `kind` with a 6-byte link-layer address. Bounded: every
/// step advances at least 8 bytes and a zero-length option ends the walk.
#[inline]
fn find_lladdr(opts: &[u8], kind: u8) -> Option<Mac> {
    let mut off = 0;
    while off + 2 <= opts.len() {
        let len = opts[off + 1] as usize * 8;
        if len == 0 || off + len > opts.len() {
            return None;
        }
        if opts[off] == kind && len >= 8 {
            return Some(array(opts, off + 2));
        }
        off += len;
    }
    None
}

#[inline]
fn check_nd<T: AsRef<[u8]>>(buffer: &T, kind: u8) -> Result<(), Error> {
    let b = buffer.as_ref();
    if b.len() < ND_LEN {
        return Err(Error::Truncated("neighbour discovery message"));
    }
    if b[field::TYPE] != kind || b[field::CODE] != 0 {
        return Err(Error::Unsupported("icmpv6 type/code"));
    }
    Ok(())
}

/// A view over an ICMPv6 Neighbor Solicitation (the ICMPv6 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicit<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborSolicit<T> {
    /// Checks type 135, code 0 and the 24-byte fixed part.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        check_nd(&buffer, ICMPV6_NEIGHBOR_SOLICIT)?;
        Ok(NeighborSolicit { buffer })
    }

    /// The address being resolved.
    #[inline]
    pub fn target(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::ND_TARGET)
    }

    /// The source link-layer address option, if present and well formed.
    #[inline]
    pub fn source_lladdr(&self) -> Option<Mac> {
        let o = self.buffer.as_ref().get(field::ND_OPTIONS..)?;
        find_lladdr(o, NDOPT_SOURCE_LLADDR)
    }

    #[inline]
    pub fn as_icmp(&self) -> Packet<&[u8]> {
        Packet::new_unchecked(self.buffer.as_ref())
    }
}

/// A view over an ICMPv6 Neighbor Advertisement (the ICMPv6 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvert<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> NeighborAdvert<T> {
    /// Checks type 136, code 0 and the 24-byte fixed part.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        check_nd(&buffer, ICMPV6_NEIGHBOR_ADVERT)?;
        Ok(NeighborAdvert { buffer })
    }

    #[inline]
    pub fn flags(&self) -> u8 {
        byte(self.buffer.as_ref(), field::ND_FLAGS)
    }
    #[inline]
    pub fn router(&self) -> bool {
        self.flags() & NA_FLAG_ROUTER != 0
    }
    #[inline]
    pub fn solicited(&self) -> bool {
        self.flags() & NA_FLAG_SOLICITED != 0
    }
    #[inline]
    pub fn override_flag(&self) -> bool {
        self.flags() & NA_FLAG_OVERRIDE != 0
    }

    /// The address being advertised.
    #[inline]
    pub fn target(&self) -> [u8; 16] {
        array(self.buffer.as_ref(), field::ND_TARGET)
    }

    /// The target link-layer address option, if present and well formed.
    #[inline]
    pub fn target_lladdr(&self) -> Option<Mac> {
        let o = self.buffer.as_ref().get(field::ND_OPTIONS..)?;
        find_lladdr(o, NDOPT_TARGET_LLADDR)
    }

    #[inline]
    pub fn as_icmp(&self) -> Packet<&[u8]> {
        Packet::new_unchecked(self.buffer.as_ref())
    }
}

/// Writes a full Ethernet + IPv6 + ICMPv6 unsolicited Neighbor Advertisement for
/// `target` to ff02::1 (33:33:00:00:00:01), from `src_mac`/`src_ip`, hop limit 255, with
/// O set, S clear, R = `router`, a target link-layer address option (`src_mac`) and a
/// valid checksum — the frame keepalived sends on an IPv6 VRRP transition. Returns its
/// length ([`NA_FRAME_LEN`], 86).
pub fn build_unsolicited_na(
    buf: &mut [u8],
    src_mac: Mac,
    src_ip: [u8; 16],
    target: [u8; 16],
    router: bool,
) -> Result<usize, Error> {
    need_space(buf, NA_FRAME_LEN)?;
    let buf = &mut buf[..NA_FRAME_LEN];
    Frame::emit(buf, ALL_NODES_MAC, src_mac, ETHERTYPE_IPV6)?;
    let icmp_len = ND_LEN + 8;
    ipv6::emit(
        &mut buf[ETH_LEN..],
        src_ip,
        ALL_NODES,
        NH_ICMPV6,
        255,
        icmp_len,
    )?;
    let m = &mut buf[ETH_LEN + ipv6::HEADER_LEN..];
    m.fill(0);
    m[field::TYPE] = ICMPV6_NEIGHBOR_ADVERT;
    m[field::ND_FLAGS] = NA_FLAG_OVERRIDE | if router { NA_FLAG_ROUTER } else { 0 };
    put_bytes(m, field::ND_TARGET, &target);
    m[field::ND_OPTIONS] = NDOPT_TARGET_LLADDR;
    m[field::ND_OPTIONS + 1] = 1;
    put_bytes(m, field::ND_OPTIONS + 2, &src_mac);
    Packet::new_unchecked(m).fill_checksum_v6(src_ip, ALL_NODES);
    Ok(NA_FRAME_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::Frame;
    use crate::wire::ipv6::Packet as Ipv6;

    const MAC: Mac = [0x02, 0x99, 0, 0, 0, 0x03];
    const VIP: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    /// keepalived's NA for fd99::100 from 02:99:00:00:00:03, as captured (vrrp_v3.pcap).
    const CAPTURED_NA: [u8; 86] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x99, 0x00, 0x00, 0x00, 0x03, 0x86, 0xdd, 0x60,
        0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, 0xfd, 0x99, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0x00, 0xd6, 0xcf, 0xa0, 0x00,
        0x00, 0x00, 0xfd, 0x99, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x02, 0x01, 0x02, 0x99, 0x00, 0x00, 0x00, 0x03,
    ];

    #[test]
    fn unsolicited_na_matches_keepalived() {
        let mut buf = [0u8; 128];
        let n = build_unsolicited_na(&mut buf, MAC, VIP, VIP, true).unwrap();
        assert_eq!(n, 86);
        assert_eq!(&buf[..n], &CAPTURED_NA[..]);
        // Parse it back.
        let f = Frame::new_checked(&buf[..n]).unwrap();
        let ip = Ipv6::new_checked(f.payload()).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        let icmp = Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum_v6(ip.src_addr(), ip.dst_addr()));
        let na = NeighborAdvert::new_checked(ip.payload()).unwrap();
        assert!(na.router() && na.override_flag() && !na.solicited());
        assert_eq!(na.target(), VIP);
        assert_eq!(na.target_lladdr(), Some(MAC));
        // Without R.
        build_unsolicited_na(&mut buf, MAC, VIP, VIP, false).unwrap();
        let ip = Ipv6::new_checked(&buf[14..86]).unwrap();
        let na = NeighborAdvert::new_checked(ip.payload()).unwrap();
        assert!(!na.router() && na.override_flag());
        assert!(na
            .as_icmp()
            .verify_checksum_v6(ip.src_addr(), ip.dst_addr()));
        assert!(build_unsolicited_na(&mut buf[..85], MAC, VIP, VIP, true).is_err());
    }

    #[test]
    fn neighbor_solicit() {
        let mut m = vec![0u8; 32];
        m[0] = ICMPV6_NEIGHBOR_SOLICIT;
        m[8..24].copy_from_slice(&VIP);
        m[24] = NDOPT_SOURCE_LLADDR;
        m[25] = 1;
        m[26..32].copy_from_slice(&MAC);
        let src = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let dst = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 1, 0];
        Packet::new_checked(&mut m[..])
            .unwrap()
            .fill_checksum_v6(src, dst);
        let ns = NeighborSolicit::new_checked(&m[..]).unwrap();
        assert_eq!(ns.target(), VIP);
        assert_eq!(ns.source_lladdr(), Some(MAC));
        assert!(ns.as_icmp().verify_checksum_v6(src, dst));
        assert!(!ns.as_icmp().verify_checksum_v6(src, ALL_NODES));
        // Wrong type for the other view.
        assert!(NeighborAdvert::new_checked(&m[..]).is_err());
        // Truncated fixed part.
        for n in 0..24 {
            assert!(NeighborSolicit::new_checked(&m[..n]).is_err(), "len {n}");
        }
        // Options: missing, zero length, running off the end.
        assert_eq!(
            NeighborSolicit::new_checked(&m[..24])
                .unwrap()
                .source_lladdr(),
            None
        );
        let mut z = m.clone();
        z[25] = 0;
        assert_eq!(
            NeighborSolicit::new_checked(&z[..])
                .unwrap()
                .source_lladdr(),
            None
        );
        z[25] = 2;
        assert_eq!(
            NeighborSolicit::new_checked(&z[..])
                .unwrap()
                .source_lladdr(),
            None
        );
        // A non-matching option first, then the right one.
        let mut two = m[..24].to_vec();
        two.extend_from_slice(&[14, 1, 0, 0, 0, 0, 0, 0]);
        two.extend_from_slice(&m[24..]);
        assert_eq!(
            NeighborSolicit::new_checked(&two[..])
                .unwrap()
                .source_lladdr(),
            Some(MAC)
        );
        // Code must be 0.
        z[1] = 1;
        assert!(NeighborSolicit::new_checked(&z[..]).is_err());
    }

    #[test]
    fn icmpv4_echo() {
        // An echo request "abcd" id 0x1234 seq 1.
        let mut m = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1, b'a', b'b', b'c', b'd'];
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.fill_checksum_v4();
        assert!(p.verify_checksum_v4());
        assert_eq!(p.msg_type(), ICMPV4_ECHO_REQUEST);
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        assert_eq!(p.payload(), b"abcd");
        let e = etherparse::Icmpv4Slice::from_slice(&m).unwrap();
        assert_eq!(
            e.checksum(),
            e.header().icmp_type.calc_checksum(e.payload())
        );
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.set_msg_type(ICMPV4_ECHO_REPLY);
        p.set_code(0);
        assert!(!p.verify_checksum_v4());
        p.fill_checksum_v4();
        assert!(p.verify_checksum_v4());
        p.set_rest_of_header([1, 2, 3, 4]);
        assert_eq!(p.rest_of_header(), [1, 2, 3, 4]);
        p.payload_mut()[0] = b'z';
        assert_eq!(p.payload(), b"zbcd");
        for n in 0..8 {
            assert!(Packet::new_checked(&m[..n]).is_err());
        }
    }

    #[test]
    fn icmpv6_echo_matches_etherparse() {
        let src = [1u8; 16];
        let dst = [2u8; 16];
        let mut m = vec![ICMPV6_ECHO_REQUEST, 0, 0, 0, 0, 7, 0, 9, 1, 2, 3];
        let mut p = Packet::new_checked(&mut m[..]).unwrap();
        p.fill_checksum_v6(src, dst);
        assert!(p.verify_checksum_v6(src, dst));
        let e = etherparse::Icmpv6Slice::from_slice(&m).unwrap();
        assert_eq!(
            e.header()
                .icmp_type
                .calc_checksum(src, dst, e.payload())
                .unwrap(),
            u16::from_be_bytes([m[2], m[3]])
        );
    }
}
