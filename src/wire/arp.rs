//! ARP for Ethernet/IPv4 (RFC 826) view, and builders for gratuitous ARP and replies.
//!
//! `Packet::new_checked` accepts only htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4
//! and a buffer of at least 28 bytes; after that every accessor is infallible. The
//! builders write a whole Ethernet + ARP frame (42 bytes, unpadded) in keepalived's
//! format, so a director's announcements look exactly like keepalived's.

use super::ethernet::{Frame, Mac, BROADCAST, ETHERTYPE_ARP, ETHERTYPE_IPV4, HEADER_LEN};
pub use super::Error;
use super::{array, be16, need_space, put16, put_bytes};
use std::net::Ipv4Addr;

pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Length of a full Ethernet + ARP frame written by the builders.
pub const FRAME_LEN: usize = HEADER_LEN + PACKET_LEN;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
}

/// A view over an Ethernet/IPv4 ARP packet (the Ethernet payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks length and that this is Ethernet/IPv4 ARP.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated("arp"));
        }
        if be16(b, field::HTYPE) != 1
            || be16(b, field::PTYPE) != ETHERTYPE_IPV4
            || b[field::HLEN] != 6
            || b[field::PLEN] != 4
        {
            return Err(Error::Unsupported("arp hardware/protocol type"));
        }
        Ok(Packet { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn op(&self) -> u16 {
        be16(self.buffer.as_ref(), field::OPER)
    }

    #[inline]
    pub fn sender_hw(&self) -> Mac {
        array(self.buffer.as_ref(), field::SHA)
    }

    #[inline]
    pub fn sender_ip(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::SPA)
    }

    #[inline]
    pub fn target_hw(&self) -> Mac {
        array(self.buffer.as_ref(), field::THA)
    }

    #[inline]
    pub fn target_ip(&self) -> [u8; 4] {
        array(self.buffer.as_ref(), field::TPA)
    }

    #[inline]
    pub fn sender_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.sender_ip())
    }

    #[inline]
    pub fn target_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.target_ip())
    }

    /// A gratuitous ARP announces its own address: sender IP equals target IP.
    #[inline]
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip() == self.target_ip()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_op(&mut self, op: u16) {
        put16(self.buffer.as_mut(), field::OPER, op);
    }
    #[inline]
    pub fn set_sender_hw(&mut self, mac: Mac) {
        put_bytes(self.buffer.as_mut(), field::SHA, &mac);
    }
    #[inline]
    pub fn set_sender_ip(&mut self, ip: [u8; 4]) {
        put_bytes(self.buffer.as_mut(), field::SPA, &ip);
    }
    #[inline]
    pub fn set_target_hw(&mut self, mac: Mac) {
        put_bytes(self.buffer.as_mut(), field::THA, &mac);
    }
    #[inline]
    pub fn set_target_ip(&mut self, ip: [u8; 4]) {
        put_bytes(self.buffer.as_mut(), field::TPA, &ip);
    }
}

/// Writes the 28-byte ARP body at `buf[HEADER_LEN..]`.
#[allow(clippy::too_many_arguments)]
fn emit_frame(
    buf: &mut [u8],
    eth_dst: Mac,
    eth_src: Mac,
    op: u16,
    sha: Mac,
    spa: [u8; 4],
    tha: Mac,
    tpa: [u8; 4],
) -> Result<usize, Error> {
    need_space(buf, FRAME_LEN)?;
    Frame::emit(buf, eth_dst, eth_src, ETHERTYPE_ARP)?;
    let a = &mut buf[HEADER_LEN..FRAME_LEN];
    put16(a, field::HTYPE, 1);
    put16(a, field::PTYPE, ETHERTYPE_IPV4);
    a[field::HLEN] = 6;
    a[field::PLEN] = 4;
    let mut p = Packet::new_unchecked(a);
    p.set_op(op);
    p.set_sender_hw(sha);
    p.set_sender_ip(spa);
    p.set_target_hw(tha);
    p.set_target_ip(tpa);
    Ok(FRAME_LEN)
}

/// Writes a gratuitous ARP as keepalived sends it: broadcast request, sender = target =
/// `ip`, target hardware address ff:ff:ff:ff:ff:ff. Returns the frame length (42).
pub fn build_gratuitous(buf: &mut [u8], mac: Mac, ip: [u8; 4]) -> Result<usize, Error> {
    emit_frame(buf, BROADCAST, mac, OP_REQUEST, mac, ip, BROADCAST, ip)
}

/// Writes a unicast ARP reply "`ip` is-at `mac`" to the requester (`to_mac`, `to_ip`).
/// Returns the frame length (42).
pub fn build_reply(
    buf: &mut [u8],
    mac: Mac,
    ip: [u8; 4],
    to_mac: Mac,
    to_ip: [u8; 4],
) -> Result<usize, Error> {
    emit_frame(buf, to_mac, mac, OP_REPLY, mac, ip, to_mac, to_ip)
}

/// Writes a broadcast ARP request "who-has `target_ip` tell `ip`". Returns 42.
pub fn build_request(
    buf: &mut [u8],
    mac: Mac,
    ip: [u8; 4],
    target_ip: [u8; 4],
) -> Result<usize, Error> {
    emit_frame(buf, BROADCAST, mac, OP_REQUEST, mac, ip, [0; 6], target_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x02, 0x99, 0, 0, 0, 0x02];
    const VIP: [u8; 4] = [10, 99, 0, 100];

    #[test]
    fn gratuitous_layout() {
        let mut buf = [0u8; 64];
        let n = build_gratuitous(&mut buf, MAC, VIP).unwrap();
        assert_eq!(n, 42);
        let f = Frame::new_checked(&buf[..n]).unwrap();
        assert_eq!(f.dst(), BROADCAST);
        assert_eq!(f.src(), MAC);
        assert_eq!(f.ethertype(), ETHERTYPE_ARP);
        let p = Packet::new_checked(f.payload()).unwrap();
        assert_eq!(p.op(), OP_REQUEST);
        assert_eq!(p.sender_hw(), MAC);
        assert_eq!(p.sender_ipv4(), Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(p.target_hw(), BROADCAST);
        assert_eq!(p.target_ip(), VIP);
        assert!(p.is_gratuitous());
        // Fixed ARP header bytes.
        assert_eq!(&buf[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
    }

    #[test]
    fn reply_and_request() {
        let mut buf = [0u8; 42];
        let to = [0x02, 0x99, 0, 0, 0, 0x10];
        build_reply(&mut buf, MAC, VIP, to, [10, 99, 0, 10]).unwrap();
        let p = Packet::new_checked(&buf[14..]).unwrap();
        assert_eq!(p.op(), OP_REPLY);
        assert_eq!(p.target_hw(), to);
        assert_eq!(p.target_ip(), [10, 99, 0, 10]);
        assert!(!p.is_gratuitous());
        assert_eq!(Frame::new_checked(&buf[..]).unwrap().dst(), to);
        build_request(&mut buf, MAC, [10, 99, 0, 2], VIP).unwrap();
        let p = Packet::new_checked(&buf[14..]).unwrap();
        assert_eq!(p.op(), OP_REQUEST);
        assert_eq!(p.target_hw(), [0; 6]);
        assert_eq!(p.target_ipv4(), Ipv4Addr::new(10, 99, 0, 100));
        assert!(build_gratuitous(&mut buf[..41], MAC, VIP).is_err());
    }

    #[test]
    fn rejects_bad_lengths_and_types() {
        let mut buf = [0u8; 42];
        build_gratuitous(&mut buf, MAC, VIP).unwrap();
        let body = buf[14..].to_vec();
        for n in 0..PACKET_LEN {
            assert_eq!(
                Packet::new_checked(&body[..n]),
                Err(Error::Truncated("arp")),
                "len {n}"
            );
        }
        for (i, v) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = body.clone();
            b[i] = v;
            assert!(matches!(
                Packet::new_checked(&b[..]),
                Err(Error::Unsupported(_))
            ));
        }
    }

    #[test]
    fn setters_roundtrip() {
        let mut body = [0u8; 28];
        body[..6].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
        let mut p = Packet::new_checked(&mut body[..]).unwrap();
        p.set_op(OP_REPLY);
        p.set_sender_hw(MAC);
        p.set_sender_ip([1, 2, 3, 4]);
        p.set_target_hw([9; 6]);
        p.set_target_ip([5, 6, 7, 8]);
        assert_eq!(
            (
                p.op(),
                p.sender_hw(),
                p.sender_ip(),
                p.target_hw(),
                p.target_ip()
            ),
            (OP_REPLY, MAC, [1, 2, 3, 4], [9; 6], [5, 6, 7, 8])
        );
    }
}
