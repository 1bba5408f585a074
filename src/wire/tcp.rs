//! TCP header view (RFC 9293).
//!
//! `Packet::new_checked` guarantees the fixed header fits, the data offset is at least 5
//! and the header with options fits the buffer. The buffer is the whole segment (the IP
//! payload, as bounded by [`super::ipv4::Packet::payload`]), which is what the checksum
//! covers. Naming follows smoltcp: `seq_number`/`ack_number` are the sequence fields,
//! `syn()`/`ack()`/... the flags.

use super::checksum;
pub use super::Error;
use super::{be16, be32, byte, put16, put32, put_byte};

pub const HEADER_LEN: usize = 20;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_SYN: u8 = 0x02;
pub const FLAG_RST: u8 = 0x04;
pub const FLAG_PSH: u8 = 0x08;
pub const FLAG_ACK: u8 = 0x10;
pub const FLAG_URG: u8 = 0x20;
pub const FLAG_ECE: u8 = 0x40;
pub const FLAG_CWR: u8 = 0x80;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Source and destination port from the first 4 bytes of a TCP or UDP header, without
/// any other check. `None` if fewer than 4 bytes.
#[inline]
pub fn ports(data: &[u8]) -> Option<(u16, u16)> {
    match data {
        [a, b, c, d, ..] => Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]))),
        _ => None,
    }
}

/// A view over a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks that the header (with options) fits and the data offset is >= 5.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated("tcp header"));
        }
        let off = (b[field::DATA_OFF] >> 4) as usize * 4;
        if off < HEADER_LEN {
            return Err(Error::Malformed("tcp data offset < 5"));
        }
        if off > b.len() {
            return Err(Error::Truncated("tcp options"));
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
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset * 4), 20..=60.
    #[inline]
    pub fn header_len(&self) -> usize {
        (byte(self.buffer.as_ref(), field::DATA_OFF) >> 4) as usize * 4
    }

    /// The flags byte (CWR ECE URG ACK PSH RST SYN FIN).
    #[inline]
    pub fn flags(&self) -> u8 {
        byte(self.buffer.as_ref(), field::FLAGS)
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & FLAG_FIN != 0
    }
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & FLAG_SYN != 0
    }
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & FLAG_RST != 0
    }
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & FLAG_PSH != 0
    }
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & FLAG_ACK != 0
    }

    #[inline]
    pub fn window(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        self.buffer
            .as_ref()
            .get(HEADER_LEN..self.header_len())
            .unwrap_or(&[])
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }

    /// Verifies the checksum with the IPv4 pseudo-header. False if the segment is longer
    /// than 65535 bytes (it cannot have come from one IPv4 packet).
    #[inline]
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        checksum::fold(checksum::pseudo_v4(src, dst, 6, len) + checksum::sum(b)) == 0xffff
    }

    /// Verifies the checksum with the IPv6 pseudo-header.
    #[inline]
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        let len = b.len() as u32;
        checksum::fold(checksum::pseudo_v6(src, dst, 6, len) + checksum::sum(b)) == 0xffff
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
    #[inline]
    pub fn set_seq_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::SEQ, v);
    }
    #[inline]
    pub fn set_ack_number(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::ACK, v);
    }
    /// Sets the raw flags byte.
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::FLAGS, v);
    }
    #[inline]
    pub fn set_window(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::WINDOW, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }
    #[inline]
    pub fn set_urgent(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::URGENT, v);
    }

    /// Computes and writes the checksum with the IPv4 pseudo-header.
    #[inline]
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = b.len() as u16;
        let c = checksum::finish(checksum::pseudo_v4(src, dst, 6, len) + checksum::sum(b));
        self.set_checksum(c);
    }

    /// Computes and writes the checksum with the IPv6 pseudo-header.
    #[inline]
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let len = b.len() as u32;
        let c = checksum::finish(checksum::pseudo_v6(src, dst, 6, len) + checksum::sum(b));
        self.set_checksum(c);
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        self.buffer.as_mut().get_mut(h..).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S4: [u8; 4] = [10, 0, 0, 1];
    const D4: [u8; 4] = [192, 168, 5, 188];

    fn syn() -> Vec<u8> {
        let mut b = vec![0u8; 24];
        b[0..2].copy_from_slice(&40000u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[4..8].copy_from_slice(&0x01020304u32.to_be_bytes());
        b[12] = 6 << 4;
        b[13] = FLAG_SYN;
        b[14..16].copy_from_slice(&64240u16.to_be_bytes());
        b[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
        b
    }

    #[test]
    fn parse_good_and_checksums() {
        let mut b = syn();
        b.extend_from_slice(b"hello");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 80));
        assert_eq!(p.seq_number(), 0x01020304);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[2, 4, 5, 0xb4]);
        assert_eq!(p.payload(), b"hello");
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert_eq!(p.flags(), FLAG_SYN);
        assert_eq!(p.window(), 64240);
        p.fill_checksum_v4(S4, D4);
        assert!(p.verify_checksum_v4(S4, D4));
        assert!(!p.verify_checksum_v4(S4, [192, 168, 5, 189]));
        // Cross-check against etherparse's checksum.
        let h = etherparse::TcpHeaderSlice::from_slice(&b)
            .unwrap()
            .to_header();
        assert_eq!(
            h.calc_checksum_ipv4_raw(S4, D4, b"hello").unwrap(),
            u16::from_be_bytes([b[16], b[17]])
        );
        let s6 = [0xfd; 16];
        let d6 = [0x20; 16];
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v6(s6, d6);
        assert!(p.verify_checksum_v6(s6, d6));
        assert!(!p.verify_checksum_v6(d6, d6));
        assert_eq!(
            h.calc_checksum_ipv6_raw(s6, d6, b"hello").unwrap(),
            u16::from_be_bytes([b[16], b[17]])
        );
    }

    #[test]
    fn rejects_malformed() {
        let b = syn();
        for n in 0..20 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("tcp header"))
            );
        }
        for n in 20..24 {
            assert_eq!(
                Packet::new_checked(&b[..n]),
                Err(Error::Truncated("tcp options"))
            );
        }
        let mut v = b.clone();
        for off in 0..5u8 {
            v[12] = off << 4;
            assert_eq!(
                Packet::new_checked(&v[..]),
                Err(Error::Malformed("tcp data offset < 5"))
            );
        }
        v[12] = 15 << 4;
        assert!(Packet::new_checked(&v[..]).is_err());
        v.resize(60, 0);
        assert_eq!(Packet::new_checked(&v[..]).unwrap().header_len(), 60);
    }

    #[test]
    fn setters_roundtrip() {
        let mut b = syn();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(FLAG_ACK | FLAG_FIN | FLAG_PSH | FLAG_RST);
        p.set_window(5);
        p.set_urgent(6);
        p.set_checksum(7);
        assert_eq!(
            (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()),
            (1, 2, 3, 4)
        );
        assert!(p.ack() && p.fin() && p.psh() && p.rst() && !p.syn());
        assert_eq!((p.window(), p.urgent(), p.checksum()), (5, 6, 7));
        assert!(p.payload_mut().is_empty());
        assert_eq!(p.header_len(), 24, "flags setter keeps the data offset");
    }

    #[test]
    fn ports_helper() {
        assert_eq!(ports(&syn()), Some((40000, 80)));
        assert_eq!(ports(&[0, 1, 0, 2]), Some((1, 2)));
        assert_eq!(ports(&[0, 1, 0]), None);
        assert_eq!(ports(&[]), None);
    }
}
