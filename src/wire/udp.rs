//! UDP header view (RFC 768).
//!
//! `Packet::new_checked` guarantees `8 <= length <= buffer length`; [`Packet::payload`]
//! and the checksum stop at `length`. Over IPv4 a zero checksum means "none" and verifies;
//! over IPv6 it is invalid (RFC 8200 §8.1). The fill functions write 0xffff for a
//! computed zero.

use super::checksum;
pub use super::tcp::ports;
pub use super::Error;
use super::{be16, put16};

pub const HEADER_LEN: usize = 8;
pub const PROTO_UDP: u8 = 17;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view over a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks `8 <= length <= buffer length`.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated("udp header"));
        }
        let len = be16(b, field::LENGTH) as usize;
        if len < HEADER_LEN {
            return Err(Error::Malformed("udp length < 8"));
        }
        if len > b.len() {
            return Err(Error::Truncated("udp length"));
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    #[inline]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// True if the length field says there is no payload.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram (header + payload) as the length field bounds it.
    #[inline]
    fn datagram(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(..self.len() as usize)
            .unwrap_or(&[])
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.len() as usize)
            .unwrap_or(&[])
    }

    /// Verifies with the IPv4 pseudo-header; a zero checksum ("none") verifies.
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let d = self.datagram();
        checksum::fold(checksum::pseudo_v4(src, dst, PROTO_UDP, self.len()) + checksum::sum(d))
            == 0xffff
    }

    /// Verifies with the IPv6 pseudo-header; a zero checksum is invalid.
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        if self.checksum() == 0 {
            return false;
        }
        let d = self.datagram();
        checksum::fold(
            checksum::pseudo_v6(src, dst, PROTO_UDP, self.len() as u32) + checksum::sum(d),
        ) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_src_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, v);
    }
    #[inline]
    pub fn set_dst_port(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, v);
    }
    /// Sets the length field (not re-checked against the buffer; accessors stay safe).
    #[inline]
    pub fn set_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    /// Computes and writes the checksum with the IPv4 pseudo-header (0xffff for zero).
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let s =
            checksum::pseudo_v4(src, dst, PROTO_UDP, self.len()) + checksum::sum(self.datagram());
        self.set_checksum(nonzero(checksum::finish(s)));
    }

    /// Computes and writes the checksum with the IPv6 pseudo-header (0xffff for zero).
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let s = checksum::pseudo_v6(src, dst, PROTO_UDP, self.len() as u32)
            + checksum::sum(self.datagram());
        self.set_checksum(nonzero(checksum::finish(s)));
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = self.len() as usize;
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..l)
            .unwrap_or(&mut [])
    }
}

#[inline]
fn nonzero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S4: [u8; 4] = [10, 0, 0, 1];
    const D4: [u8; 4] = [10, 0, 0, 2];

    fn dgram(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b[0..2].copy_from_slice(&5353u16.to_be_bytes());
        b[2..4].copy_from_slice(&53u16.to_be_bytes());
        b[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn parse_good_with_padding() {
        let mut b = dgram(b"abc");
        b.extend_from_slice(&[0xaa; 5]); // trailing bytes beyond length
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len()), (5353, 53, 11));
        assert_eq!(p.payload(), b"abc");
        assert!(!p.is_empty());
        assert!(p.verify_checksum_v4(S4, D4), "zero = no checksum over IPv4");
        assert!(
            !p.verify_checksum_v6([1; 16], [2; 16]),
            "zero is invalid over IPv6"
        );
        p.fill_checksum_v4(S4, D4);
        assert_ne!(p.checksum(), 0);
        assert!(p.verify_checksum_v4(S4, D4));
        assert!(!p.verify_checksum_v4(S4, S4));
        let h = etherparse::UdpHeaderSlice::from_slice(&b)
            .unwrap()
            .to_header();
        assert_eq!(
            h.calc_checksum_ipv4_raw(S4, D4, b"abc").unwrap(),
            u16::from_be_bytes([b[6], b[7]])
        );
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v6([1; 16], [2; 16]);
        assert!(p.verify_checksum_v6([1; 16], [2; 16]));
        assert_eq!(
            h.calc_checksum_ipv6_raw([1; 16], [2; 16], b"abc").unwrap(),
            u16::from_be_bytes([b[6], b[7]])
        );
    }

    #[test]
    fn zero_checksum_becomes_ffff() {
        // Search for a payload word that makes the computed checksum zero.
        let mut found = false;
        for w in 0..=0xffffu16 {
            let mut b = dgram(&w.to_be_bytes());
            let mut p = Packet::new_checked(&mut b[..]).unwrap();
            p.fill_checksum_v4(S4, D4);
            assert_ne!(p.checksum(), 0);
            assert!(p.verify_checksum_v4(S4, D4));
            if p.checksum() == 0xffff {
                found = true;
                break;
            }
        }
        assert!(found);
    }

    #[test]
    fn rejects_malformed() {
        let b = dgram(b"abcd");
        for n in 0..8 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("udp header"))
            );
        }
        for n in 8..12 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("udp length"))
            );
        }
        let mut v = b.clone();
        for l in 0..8u16 {
            v[4..6].copy_from_slice(&l.to_be_bytes());
            assert_eq!(
                Packet::new_checked(&v[..]),
                Err(Error::Malformed("udp length < 8"))
            );
        }
        v[4..6].copy_from_slice(&8u16.to_be_bytes());
        let p = Packet::new_checked(&v[..]).unwrap();
        assert!(p.is_empty());
        assert!(p.payload().is_empty());
    }

    #[test]
    fn setters_roundtrip() {
        let mut b = dgram(b"xyz");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_checksum(3);
        p.payload_mut()[0] = b'q';
        assert_eq!((p.src_port(), p.dst_port(), p.checksum()), (1, 2, 3));
        assert_eq!(p.payload(), b"qyz");
        p.set_len(9);
        assert_eq!(p.payload(), b"q");
        p.set_len(200); // lying length after the check: accessors stay in bounds
        assert!(p.payload().is_empty());
        assert!(!p.verify_checksum_v6([0; 16], [0; 16]));
        assert_eq!(ports(&b), Some((1, 2)));
    }
}
