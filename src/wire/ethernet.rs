//! Ethernet II frame view with zero or one 802.1Q / 802.1ad tag.
//!
//! `Frame::new_checked` guarantees the buffer holds the whole header (14 bytes, or 18 when
//! the outer ethertype is 0x8100 or 0x88a8), so every accessor is infallible afterwards.
//! With a tag, [`Frame::ethertype`] is the *inner* ethertype and [`Frame::vlan`] the VID;
//! a second tag (double-tagged QinQ) is not unwrapped: `ethertype()` then returns
//! 0x8100/0x88a8 and the caller treats the frame as unknown.

pub use super::Error;
use super::{array, be16, need_space, put16, put_bytes};

/// A MAC address.
pub type Mac = [u8; 6];

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service VLAN tag (QinQ outer tag).
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

pub const BROADCAST: Mac = [0xff; 6];
/// Length of an untagged header.
pub const HEADER_LEN: usize = 14;
/// Length of a header with one VLAN tag.
pub const TAGGED_HEADER_LEN: usize = 18;

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const TYPE: usize = 12;
    pub const TCI: usize = 14;
    pub const INNER_TYPE: usize = 16;
}

#[inline]
fn is_tag(t: u16) -> bool {
    t == ETHERTYPE_VLAN || t == ETHERTYPE_QINQ
}

/// A view over an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps without checking; accessors still never panic but may return zeros.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps after checking the buffer holds the full (possibly tagged) header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated("ethernet header"));
        }
        if is_tag(be16(b, field::TYPE)) && b.len() < TAGGED_HEADER_LEN {
            return Err(Error::Truncated("ethernet vlan tag"));
        }
        Ok(Frame { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    #[inline]
    pub fn dst(&self) -> Mac {
        array(self.buffer.as_ref(), field::DST.start)
    }

    #[inline]
    pub fn src(&self) -> Mac {
        array(self.buffer.as_ref(), field::SRC.start)
    }

    /// True if the frame carries a VLAN tag (outer ethertype 0x8100 or 0x88a8).
    #[inline]
    pub fn is_tagged(&self) -> bool {
        is_tag(be16(self.buffer.as_ref(), field::TYPE))
    }

    /// The outer ethertype (0x8100/0x88a8 for a tagged frame).
    #[inline]
    pub fn outer_ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TYPE)
    }

    /// The VLAN ID (12 bits) of the tag, if any.
    #[inline]
    pub fn vlan(&self) -> Option<u16> {
        self.tci().map(|t| t & 0x0fff)
    }

    /// The full tag control information (PCP, DEI, VID), if tagged.
    #[inline]
    pub fn tci(&self) -> Option<u16> {
        if self.is_tagged() {
            Some(be16(self.buffer.as_ref(), field::TCI))
        } else {
            None
        }
    }

    /// The ethertype of the payload (inside the tag if there is one).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.is_tagged() {
            be16(b, field::INNER_TYPE)
        } else {
            be16(b, field::TYPE)
        }
    }

    /// 14, or 18 with a tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Everything after the header (including any Ethernet padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    #[inline]
    pub fn set_dst(&mut self, mac: Mac) {
        put_bytes(self.buffer.as_mut(), field::DST.start, &mac);
    }

    #[inline]
    pub fn set_src(&mut self, mac: Mac) {
        put_bytes(self.buffer.as_mut(), field::SRC.start, &mac);
    }

    /// Sets the payload ethertype (the inner one if tagged).
    #[inline]
    pub fn set_ethertype(&mut self, t: u16) {
        let off = if self.is_tagged() {
            field::INNER_TYPE
        } else {
            field::TYPE
        };
        put16(self.buffer.as_mut(), off, t);
    }

    /// Rewrites the VID of an existing tag, keeping PCP and DEI; no-op if untagged.
    #[inline]
    pub fn set_vlan(&mut self, vid: u16) {
        if let Some(tci) = self.tci() {
            put16(
                self.buffer.as_mut(),
                field::TCI,
                (tci & 0xf000) | (vid & 0x0fff),
            );
        }
    }

    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        self.buffer.as_mut().get_mut(h..).unwrap_or(&mut [])
    }
}

impl Frame<&mut [u8]> {
    /// Writes an untagged header into `buf`; returns the header length (14).
    pub fn emit(buf: &mut [u8], dst: Mac, src: Mac, ethertype: u16) -> Result<usize, Error> {
        need_space(buf, HEADER_LEN)?;
        put_bytes(buf, field::DST.start, &dst);
        put_bytes(buf, field::SRC.start, &src);
        put16(buf, field::TYPE, ethertype);
        Ok(HEADER_LEN)
    }

    /// Writes a header with one 802.1Q tag (PCP/DEI zero); returns 18.
    pub fn emit_tagged(
        buf: &mut [u8],
        dst: Mac,
        src: Mac,
        vid: u16,
        ethertype: u16,
    ) -> Result<usize, Error> {
        need_space(buf, TAGGED_HEADER_LEN)?;
        put_bytes(buf, field::DST.start, &dst);
        put_bytes(buf, field::SRC.start, &src);
        put16(buf, field::TYPE, ETHERTYPE_VLAN);
        put16(buf, field::TCI, vid & 0x0fff);
        put16(buf, field::INNER_TYPE, ethertype);
        Ok(TAGGED_HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = [0x02, 0x99, 0, 0, 0, 0x02];
    const B: Mac = [0x02, 0x99, 0, 0, 0, 0x10];

    #[test]
    fn untagged_roundtrip() {
        let mut buf = [0u8; 20];
        assert_eq!(Frame::emit(&mut buf, A, B, ETHERTYPE_IPV4), Ok(14));
        buf[14..].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        let f = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.dst(), A);
        assert_eq!(f.src(), B);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.vlan(), None);
        assert_eq!(f.header_len(), 14);
        assert_eq!(f.payload(), &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn tagged_roundtrip_and_cross_check() {
        let mut buf = [0u8; 24];
        assert_eq!(
            Frame::emit_tagged(&mut buf, A, B, 0x123, ETHERTYPE_IPV6),
            Ok(18)
        );
        buf[14] |= 0xa0; // PCP 5
        let f = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.vlan(), Some(0x123));
        assert_eq!(f.tci(), Some(0xa123));
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(f.header_len(), 18);
        assert_eq!(f.payload().len(), 6);
        // etherparse agrees.
        let e = etherparse::Ethernet2Slice::from_slice_without_fcs(&buf).unwrap();
        assert_eq!(e.ether_type(), etherparse::EtherType(ETHERTYPE_VLAN));
        let v = etherparse::SingleVlanSlice::from_slice(&buf[14..]).unwrap();
        assert_eq!(v.vlan_identifier().value(), 0x123);
        assert_eq!(v.ether_type(), etherparse::EtherType(ETHERTYPE_IPV6));
        // QinQ outer tag is unwrapped the same way.
        buf[12..14].copy_from_slice(&ETHERTYPE_QINQ.to_be_bytes());
        let f = Frame::new_checked(&buf[..]).unwrap();
        assert_eq!(f.vlan(), Some(0x123));
        assert_eq!(f.ethertype(), ETHERTYPE_IPV6);
    }

    #[test]
    fn setters() {
        let mut buf = [0u8; 18];
        Frame::emit_tagged(&mut buf, A, B, 7, ETHERTYPE_ARP).unwrap();
        buf[14] |= 0xe0;
        let mut f = Frame::new_checked(&mut buf[..]).unwrap();
        f.set_dst(B);
        f.set_src(A);
        f.set_ethertype(ETHERTYPE_IPV4);
        f.set_vlan(0xfff);
        assert_eq!(f.dst(), B);
        assert_eq!(f.src(), A);
        assert_eq!(f.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(f.outer_ethertype(), ETHERTYPE_VLAN);
        assert_eq!(f.tci(), Some(0xefff));
        assert!(f.payload_mut().is_empty());
    }

    #[test]
    fn truncation() {
        let mut buf = [0u8; 18];
        Frame::emit_tagged(&mut buf, A, B, 7, ETHERTYPE_ARP).unwrap();
        for n in 0..18 {
            assert!(Frame::new_checked(&buf[..n]).is_err(), "len {n}");
        }
        assert!(Frame::new_checked(&buf[..]).is_ok());
        Frame::emit(&mut buf, A, B, ETHERTYPE_ARP).unwrap();
        for n in 0..14 {
            assert!(Frame::new_checked(&buf[..n]).is_err(), "len {n}");
        }
        assert!(Frame::new_checked(&buf[..14]).is_ok());
        assert!(matches!(
            Frame::emit(&mut buf[..13], A, B, 1),
            Err(Error::BufferTooSmall { need: 14, have: 13 })
        ));
        assert!(Frame::emit_tagged(&mut buf[..17], A, B, 1, 1).is_err());
    }
}
