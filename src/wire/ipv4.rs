//! IPv4 header view (RFC 791), options included.
//!
//! `Packet::new_checked` guarantees: version 4, IHL >= 5, the header (with options) fits
//! the buffer, and `header_len <= total_len <= buffer length`. A buffer longer than
//! `total_len` is accepted (Ethernet padding); [`Packet::payload`] stops at `total_len`.
//! After the check no accessor panics. [`Packet::set_ttl`] and the address setters with
//! an `_incremental` suffix keep the header checksum valid by RFC 1624.

use super::checksum;
pub use super::Error;
use super::{array, be16, byte, need_space, put16, put_byte, put_bytes};
use std::net::Ipv4Addr;

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_VRRP: u8 = 112;
/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;

/// A view over an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Validates version, IHL and total length against the buffer.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Error::Truncated("ipv4 header"));
        }
        if b[field::VER_IHL] >> 4 != 4 {
            return Err(Error::Malformed("ipv4 version"));
        }
        let hl = ((b[field::VER_IHL] & 0x0f) as usize) * 4;
        if hl < MIN_HEADER_LEN {
            return Err(Error::Malformed("ipv4 ihl < 5"));
        }
        if hl > b.len() {
            return Err(Error::Truncated("ipv4 options"));
        }
        let total = be16(b, field::LENGTH) as usize;
        if total < hl {
            return Err(Error::Malformed("ipv4 total length < header length"));
        }
        if total > b.len() {
            return Err(Error::Truncated("ipv4 total length"));
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL * 4), 20..=60.
    #[inline]
    pub fn header_len(&self) -> usize {
        ((byte(self.buffer.as_ref(), field::VER_IHL) & 0x0f) as usize) * 4
    }

    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        byte(self.buffer.as_ref(), field::DSCP_ECN)
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & 0x1fff) << 3
    }

    /// True for any fragment (first, middle or last) of a fragmented datagram.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | 0x1fff) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        byte(self.buffer.as_ref(), field::TTL)
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PROTOCOL)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SRC)
    }

    #[inline]
    pub fn dst_addr(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::DST)
    }

    #[inline]
    pub fn src_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src_addr())
    }

    #[inline]
    pub fn dst_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst_addr())
    }

    /// The options bytes (empty for IHL 5).
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(MIN_HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    /// The header including options.
    #[inline]
    pub fn header(&self) -> &[u8] {
        self.buffer.as_ref().get(..self.header_len()).unwrap_or(&[])
    }

    /// The payload, from the end of the header to `total_len` (padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.header_len()..self.total_len() as usize)
            .unwrap_or(&[])
    }

    /// True if the header checksum is valid.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(self.header())
    }

    /// Partial sum of the pseudo-header for this packet's upper layer (its protocol and
    /// payload length), for TCP/UDP checksums.
    #[inline]
    pub fn pseudo_sum(&self) -> u32 {
        let len = (self.total_len() as usize).saturating_sub(self.header_len()) as u16;
        checksum::pseudo_v4(self.src_addr(), self.dst_addr(), self.protocol(), len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_dscp_ecn(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::DSCP_ECN, v);
    }

    #[inline]
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }

    #[inline]
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT, v);
    }

    /// Sets DF, MF and the fragment offset (in bytes, rounded down to 8).
    #[inline]
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset_bytes: u16) {
        let mut v = (offset_bytes >> 3) & 0x1fff;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        put16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    /// Sets the TTL and updates the checksum incrementally (RFC 1624).
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        let old = be16(self.buffer.as_ref(), field::TTL);
        let new = ((ttl as u16) << 8) | (old & 0x00ff);
        put_byte(self.buffer.as_mut(), field::TTL, ttl);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_checksum(c);
    }

    /// Decrements the TTL (with incremental checksum update); returns the new TTL, or
    /// `None` without touching the packet if it was already 0 or 1 (must not forward).
    #[inline]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let t = self.ttl();
        if t <= 1 {
            return None;
        }
        self.set_ttl(t - 1);
        Some(t - 1)
    }

    /// Sets the protocol without touching the checksum.
    #[inline]
    pub fn set_protocol(&mut self, p: u8) {
        put_byte(self.buffer.as_mut(), field::PROTOCOL, p);
    }

    #[inline]
    pub fn set_checksum(&mut self, c: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Sets the source address without touching the checksum.
    #[inline]
    pub fn set_src_addr(&mut self, a: [u8; 4]) {
        put_bytes(self.buffer.as_mut(), field::SRC, &a);
    }

    /// Sets the destination address without touching the checksum.
    #[inline]
    pub fn set_dst_addr(&mut self, a: [u8; 4]) {
        put_bytes(self.buffer.as_mut(), field::DST, &a);
    }

    /// Sets the source address and updates the header checksum incrementally.
    #[inline]
    pub fn set_src_addr_incremental(&mut self, a: [u8; 4]) {
        let old = u32::from_be_bytes(self.src_addr());
        self.set_src_addr(a);
        let c = checksum::update32(self.checksum(), old, u32::from_be_bytes(a));
        self.set_checksum(c);
    }

    /// Sets the destination address and updates the header checksum incrementally.
    #[inline]
    pub fn set_dst_addr_incremental(&mut self, a: [u8; 4]) {
        let old = u32::from_be_bytes(self.dst_addr());
        self.set_dst_addr(a);
        let c = checksum::update32(self.checksum(), old, u32::from_be_bytes(a));
        self.set_checksum(c);
    }

    /// Recomputes the header checksum from scratch.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// The options bytes, writable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(MIN_HEADER_LEN..h)
            .unwrap_or(&mut [])
    }

    /// The payload (bounded by `total_len`), writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        self.buffer.as_mut().get_mut(h..t).unwrap_or(&mut [])
    }
}

/// Writes a 20-byte IPv4 header (no options, TOS 0, ident 0, DF clear) with a valid
/// checksum for a payload of `payload_len` bytes; returns 20. The payload itself is not
/// written. Use the setters (then `fill_checksum`) for other TOS/ident/flags.
pub fn emit(
    buf: &mut [u8],
    src: [u8; 4],
    dst: [u8; 4],
    protocol: u8,
    ttl: u8,
    payload_len: usize,
) -> Result<usize, Error> {
    need_space(buf, MIN_HEADER_LEN)?;
    let total = MIN_HEADER_LEN + payload_len;
    if total > u16::MAX as usize {
        return Err(Error::Malformed("ipv4 total length > 65535"));
    }
    let h = &mut buf[..MIN_HEADER_LEN];
    h.fill(0);
    h[field::VER_IHL] = 0x45;
    let mut p = Packet::new_unchecked(h);
    p.set_total_len(total as u16);
    put_byte(p.buffer, field::TTL, ttl);
    p.set_protocol(protocol);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    p.fill_checksum();
    Ok(MIN_HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic header from the checksum tests, with payload and 4 bytes of padding.
    fn sample() -> Vec<u8> {
        let mut v = vec![
            0x45, 0x00, 0x00, 0x1c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        v.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let c = checksum::checksum(&v[..20]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        v.extend_from_slice(&[0xee; 4]);
        v
    }

    #[test]
    fn parse_good() {
        let b = sample();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag());
        assert!(!p.more_frags());
        assert_eq!(p.frag_offset(), 0);
        assert!(!p.is_fragment());
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.src_ipv4(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), [192, 168, 0, 199]);
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(p.verify_checksum());
        // Cross-check with etherparse.
        let e = etherparse::Ipv4HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.header_checksum(), p.checksum());
        assert_eq!(e.total_len(), p.total_len());
        assert_eq!(e.source(), p.src_addr());
    }

    #[test]
    fn options_and_fragments() {
        let mut b = [0u8; 40];
        b[0] = 0x47; // IHL 7: 8 bytes of options
        b[2..4].copy_from_slice(&40u16.to_be_bytes());
        b[6..8].copy_from_slice(&(0x2000u16 | 185).to_be_bytes()); // MF, offset 1480
        b[20..28].copy_from_slice(&[0x94, 0x04, 0, 0, 1, 1, 1, 0]);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), &[0x94, 0x04, 0, 0, 1, 1, 1, 0]);
        assert_eq!(p.payload().len(), 12);
        assert!(p.more_frags());
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment());
        p.set_frag(false, false, 1480);
        assert!(p.is_fragment(), "last fragment is still a fragment");
        p.set_frag(true, false, 0);
        assert!(!p.is_fragment());
        assert!(p.dont_frag());
    }

    #[test]
    fn rejects_malformed() {
        let b = sample();
        for n in 0..20 {
            assert!(Packet::new_checked(&b[..n]).is_err(), "len {n}");
        }
        // Cut inside the payload: total_len lies (too long for the buffer).
        for n in 20..28 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("ipv4 total length"))
            );
        }
        assert!(Packet::new_checked(&b[..28]).is_ok());
        // Version.
        let mut v = b.clone();
        v[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Malformed("ipv4 version"))
        );
        // IHL < 5.
        for ihl in 0..5u8 {
            v[0] = 0x40 | ihl;
            assert_eq!(
                Packet::new_checked(&v[..]),
                Err(Error::Malformed("ipv4 ihl < 5"))
            );
        }
        // IHL beyond the buffer.
        v[0] = 0x4f;
        assert_eq!(
            Packet::new_checked(&v[..32]),
            Err(Error::Truncated("ipv4 options"))
        );
        // IHL beyond total_len (but within the buffer).
        v[0] = 0x48; // 32 bytes of header: fits the 32-byte buffer, not total_len 28
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Malformed("ipv4 total length < header length"))
        );
        // total_len below 20.
        let mut v = b.clone();
        v[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(Packet::new_checked(&v[..]).is_err());
        // total_len far beyond the buffer.
        v[2..4].copy_from_slice(&0xffffu16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Truncated("ipv4 total length"))
        );
    }

    #[test]
    fn set_ttl_keeps_checksum() {
        let mut b = sample();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        for ttl in [63u8, 0, 255, 1, 128] {
            p.set_ttl(ttl);
            assert_eq!(p.ttl(), ttl);
            assert!(p.verify_checksum(), "ttl {ttl}");
        }
        p.set_ttl(2);
        assert_eq!(p.decrement_ttl(), Some(1));
        assert_eq!(p.decrement_ttl(), None);
        assert_eq!(p.ttl(), 1);
        assert!(p.verify_checksum());
    }

    #[test]
    fn address_setters() {
        let mut b = sample();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dst_addr_incremental([10, 1, 2, 3]);
        p.set_src_addr_incremental([172, 16, 255, 254]);
        assert_eq!(p.dst_addr(), [10, 1, 2, 3]);
        assert_eq!(p.src_addr(), [172, 16, 255, 254]);
        assert!(p.verify_checksum());
        let inc = p.checksum();
        p.fill_checksum();
        assert_eq!(p.checksum(), inc);
        p.set_src_addr([1, 1, 1, 1]);
        assert!(!p.verify_checksum());
        p.set_dscp_ecn(0xc0);
        p.set_ident(7);
        p.set_protocol(PROTO_TCP);
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.dscp_ecn(), p.ident(), p.protocol()),
            (0xc0, 7, PROTO_TCP)
        );
        p.payload_mut()[0] = 9;
        assert_eq!(p.payload()[0], 9);
    }

    #[test]
    fn emit_roundtrip() {
        let mut buf = [0u8; 64];
        let n = emit(&mut buf, [10, 0, 0, 1], [10, 0, 0, 2], PROTO_VRRP, 255, 20).unwrap();
        assert_eq!(n, 20);
        let p = Packet::new_checked(&buf[..40]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ttl(), 255);
        assert_eq!(p.protocol(), PROTO_VRRP);
        assert_eq!(p.payload().len(), 20);
        let e = etherparse::Ipv4HeaderSlice::from_slice(&buf[..20]).unwrap();
        assert_eq!(e.to_header().calc_header_checksum(), p.checksum());
        assert!(emit(&mut buf[..19], [0; 4], [0; 4], 0, 0, 0).is_err());
        assert!(emit(&mut buf, [0; 4], [0; 4], 0, 0, 70000).is_err());
    }
}
