//! VRRP advertisement view and emitter, version 2 (RFC 3768) and 3 (RFC 5798).
//!
//! The view covers the VRRP message (the IP payload). `Packet::new_checked` guarantees:
//! version 2 or 3, type 1 (advertisement), and that the advertised address count fits:
//! `8 + 4n + 8` bytes for v2 (addresses then 8 bytes of authentication data), `8 + 4n`
//! for v3; [`Packet::new_checked_v6`] requires v3 and `8 + 16n`. The address family is
//! not in the VRRP header: the caller knows it from the IP header. Address iterators are
//! bounded by both the count and the buffer, so no accessor panics.
//!
//! Checksums: v2 covers the VRRP message only; v3 adds the IPv4 or IPv6 pseudo-header
//! (keepalived's default; `vrrp_v3_checksum_as_v2` is the v2 rule applied to v3, which
//! [`VrrpRepr::emit`] produces when given no pseudo-header).

use super::checksum;
pub use super::Error;
use super::{array, be16, byte, need_space, put16, put_byte, put_bytes};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const PROTO_VRRP: u8 = 112;
pub const TYPE_ADVERTISEMENT: u8 = 1;
pub const HEADER_LEN: usize = 8;
/// v2 authentication data length.
pub const AUTH_LEN: usize = 8;
/// v2 authentication types.
pub const AUTH_NONE: u8 = 0;
pub const AUTH_SIMPLE: u8 = 1;
pub const AUTH_AH: u8 = 2;
/// 224.0.0.18
pub const MCAST_V4: [u8; 4] = [224, 0, 0, 18];
/// ff02::12
pub const MCAST_V6: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12];

/// The VRRP virtual router MAC: 00:00:5e:00:01:{vrid} (IPv4) or 00:00:5e:00:02:{vrid}.
#[inline]
pub fn virtual_mac(vrid: u8, ipv6: bool) -> [u8; 6] {
    [0, 0, 0x5e, 0, if ipv6 { 2 } else { 1 }, vrid]
}

mod field {
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2 only.
    pub const AUTH_TYPE: usize = 4;
    /// v2 only: seconds.
    pub const ADVER_INT_V2: usize = 5;
    /// v3: 4 reserved bits + 12-bit max advertisement interval (centiseconds).
    pub const ADVER_INT_V3: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const ADDRS: usize = 8;
}

/// A view over a VRRP advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    #[inline]
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Checks an advertisement carried over IPv4 (v2, or v3 with 4-byte addresses).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        Self::check(buffer, false)
    }

    /// Checks a v3 advertisement carried over IPv6 (16-byte addresses).
    #[inline]
    pub fn new_checked_v6(buffer: T) -> Result<Self, Error> {
        Self::check(buffer, true)
    }

    fn check(buffer: T, ipv6: bool) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated("vrrp header"));
        }
        let version = b[field::VER_TYPE] >> 4;
        let need = match (version, ipv6) {
            (2, false) => HEADER_LEN + 4 * b[field::COUNT] as usize + AUTH_LEN,
            (3, false) => HEADER_LEN + 4 * b[field::COUNT] as usize,
            (3, true) => HEADER_LEN + 16 * b[field::COUNT] as usize,
            (2, true) => return Err(Error::Malformed("vrrp v2 over ipv6")),
            _ => return Err(Error::Malformed("vrrp version")),
        };
        if b[field::VER_TYPE] & 0x0f != TYPE_ADVERTISEMENT {
            return Err(Error::Unsupported("vrrp type"));
        }
        if b.len() < need {
            return Err(Error::Truncated("vrrp addresses"));
        }
        Ok(Packet { buffer })
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
    pub fn version(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VER_TYPE) >> 4
    }

    /// The message type (1 = advertisement).
    #[inline]
    pub fn kind(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VER_TYPE) & 0x0f
    }

    #[inline]
    pub fn vrid(&self) -> u8 {
        byte(self.buffer.as_ref(), field::VRID)
    }

    #[inline]
    pub fn priority(&self) -> u8 {
        byte(self.buffer.as_ref(), field::PRIORITY)
    }

    #[inline]
    pub fn addr_count(&self) -> u8 {
        byte(self.buffer.as_ref(), field::COUNT)
    }

    /// v2 authentication type; `None` for v3 (which has no such field).
    #[inline]
    pub fn auth_type(&self) -> Option<u8> {
        (self.version() == 2).then(|| byte(self.buffer.as_ref(), field::AUTH_TYPE))
    }

    /// The advertisement interval in centiseconds: v2 seconds * 100, v3's 12-bit field.
    #[inline]
    pub fn advert_interval_cs(&self) -> u16 {
        let b = self.buffer.as_ref();
        if self.version() == 2 {
            byte(b, field::ADVER_INT_V2) as u16 * 100
        } else {
            be16(b, field::ADVER_INT_V3) & 0x0fff
        }
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The advertised IPv4 addresses (bounded by the count and the buffer).
    #[inline]
    pub fn addresses_v4(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.buffer
            .as_ref()
            .get(field::ADDRS..)
            .unwrap_or(&[])
            .chunks_exact(4)
            .take(self.addr_count() as usize)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
    }

    /// The advertised IPv6 addresses (bounded by the count and the buffer).
    #[inline]
    pub fn addresses_v6(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.buffer
            .as_ref()
            .get(field::ADDRS..)
            .unwrap_or(&[])
            .chunks_exact(16)
            .take(self.addr_count() as usize)
            .map(|c| Ipv6Addr::from(array::<16>(c, 0)))
    }

    /// v2 authentication data (the 8 bytes after the addresses); `None` for v3.
    #[inline]
    pub fn auth_data(&self) -> Option<[u8; 8]> {
        if self.version() != 2 {
            return None;
        }
        let off = field::ADDRS + 4 * self.addr_count() as usize;
        self.buffer
            .as_ref()
            .get(off..off + AUTH_LEN)
            .map(|s| array(s, 0))
    }

    /// The v2 rule: the checksum covers the VRRP message only.
    #[inline]
    pub fn verify_checksum_v2(&self) -> bool {
        checksum::verify(self.buffer.as_ref())
    }

    /// v3 over IPv4: the checksum includes the IPv4 pseudo-header.
    #[inline]
    pub fn verify_checksum_v3_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let b = self.buffer.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        checksum::fold(checksum::pseudo_v4(src, dst, PROTO_VRRP, len) + checksum::sum(b)) == 0xffff
    }

    /// v3 over IPv6: the checksum includes the IPv6 pseudo-header.
    #[inline]
    pub fn verify_checksum_v3_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buffer.as_ref();
        checksum::fold(checksum::pseudo_v6(src, dst, PROTO_VRRP, b.len() as u32) + checksum::sum(b))
            == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_vrid(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::VRID, v);
    }
    #[inline]
    pub fn set_priority(&mut self, v: u8) {
        put_byte(self.buffer.as_mut(), field::PRIORITY, v);
    }
    #[inline]
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, v);
    }

    #[inline]
    pub fn fill_checksum_v2(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    #[inline]
    pub fn fill_checksum_v3_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let s = checksum::pseudo_v4(src, dst, PROTO_VRRP, b.len() as u16) + checksum::sum(b);
        self.set_checksum(checksum::finish(s));
    }

    #[inline]
    pub fn fill_checksum_v3_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let s = checksum::pseudo_v6(src, dst, PROTO_VRRP, b.len() as u32) + checksum::sum(b);
        self.set_checksum(checksum::finish(s));
    }
}

/// A VRRP advertisement to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VrrpRepr<'a> {
    /// 2 or 3.
    pub version: u8,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds; for v2 a whole number of seconds (100..=25500).
    pub advert_interval_cs: u16,
    /// v2 simple-password authentication (auth type 1) if `Some`, none (type 0) if
    /// `None`. Ignored for v3.
    pub auth: Option<[u8; 8]>,
    /// The virtual addresses; all of one family (v2: IPv4 only).
    pub addrs: &'a [IpAddr],
}

impl VrrpRepr<'_> {
    fn is_v6(&self, pseudo: Option<(IpAddr, IpAddr)>) -> Result<bool, Error> {
        let v6 = match (self.addrs.first(), pseudo) {
            (Some(a), _) => a.is_ipv6(),
            (None, Some((s, _))) => s.is_ipv6(),
            (None, None) => false,
        };
        if self.addrs.iter().any(|a| a.is_ipv6() != v6) {
            return Err(Error::Malformed("vrrp addresses of mixed families"));
        }
        Ok(v6)
    }

    /// The length [`VrrpRepr::emit`] writes (meaningful only for a valid repr).
    pub fn buffer_len(&self) -> usize {
        let v6 = self.addrs.first().is_some_and(|a| a.is_ipv6());
        let per = if v6 { 16 } else { 4 };
        let auth = if self.version == 2 { AUTH_LEN } else { 0 };
        HEADER_LEN + per * self.addrs.len() + auth
    }

    /// Writes the advertisement into `buf` and returns its length.
    ///
    /// v2: `pseudo` is ignored and the checksum covers the message. v3: with
    /// `pseudo = Some((src, dst))` (the IP addresses the packet will carry, same family
    /// as `addrs`) the checksum includes the pseudo-header, as RFC 5798 and keepalived's
    /// default do; with `None` it is computed as for v2 (`vrrp_v3_checksum_as_v2`).
    pub fn emit(&self, buf: &mut [u8], pseudo: Option<(IpAddr, IpAddr)>) -> Result<usize, Error> {
        let v6 = self.is_v6(pseudo)?;
        let count = u8::try_from(self.addrs.len())
            .map_err(|_| Error::Malformed("vrrp: more than 255 addresses"))?;
        let adver = match self.version {
            2 => {
                if v6 {
                    return Err(Error::Malformed("vrrp v2 over ipv6"));
                }
                let s = self.advert_interval_cs / 100;
                if self.advert_interval_cs % 100 != 0 || s == 0 || s > 255 {
                    return Err(Error::Malformed("vrrp v2 interval: whole seconds 1..=255"));
                }
                s
            }
            3 => {
                if self.advert_interval_cs > 0x0fff {
                    return Err(Error::Malformed("vrrp v3 interval > 4095 cs"));
                }
                self.advert_interval_cs
            }
            _ => return Err(Error::Malformed("vrrp version")),
        };
        if let Some((s, d)) = pseudo {
            if self.version == 3 && (s.is_ipv6() != v6 || d.is_ipv6() != v6) {
                return Err(Error::Malformed("vrrp pseudo-header family"));
            }
        }
        let len = self.buffer_len();
        need_space(buf, len)?;
        let b = &mut buf[..len];
        b[field::VER_TYPE] = (self.version << 4) | TYPE_ADVERTISEMENT;
        b[field::VRID] = self.vrid;
        b[field::PRIORITY] = self.priority;
        b[field::COUNT] = count;
        if self.version == 2 {
            b[field::AUTH_TYPE] = if self.auth.is_some() {
                AUTH_SIMPLE
            } else {
                AUTH_NONE
            };
            b[field::ADVER_INT_V2] = adver as u8;
        } else {
            put16(b, field::ADVER_INT_V3, adver);
        }
        put16(b, field::CHECKSUM, 0);
        let mut off = field::ADDRS;
        for a in self.addrs {
            match a {
                IpAddr::V4(a) => {
                    put_bytes(b, off, &a.octets());
                    off += 4;
                }
                IpAddr::V6(a) => {
                    put_bytes(b, off, &a.octets());
                    off += 16;
                }
            }
        }
        if self.version == 2 {
            put_bytes(b, off, &self.auth.unwrap_or([0; 8]));
        }
        let mut p = Packet::new_unchecked(b);
        match (self.version, pseudo) {
            (3, Some((IpAddr::V4(s), IpAddr::V4(d)))) => {
                p.fill_checksum_v3_v4(s.octets(), d.octets())
            }
            (3, Some((IpAddr::V6(s), IpAddr::V6(d)))) => {
                p.fill_checksum_v3_v6(s.octets(), d.octets())
            }
            _ => p.fill_checksum_v2(),
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VRRPv2 advert from vrrp_v2.pcap: lb2, VRID 51, prio 100, 1 s, VIP 10.99.0.100.
    const V2: [u8; 20] = [
        0x21, 0x33, 0x64, 0x01, 0x00, 0x01, 0x70, 0x03, 0x0a, 0x63, 0x00, 0x64, 0, 0, 0, 0, 0, 0,
        0, 0,
    ];
    const LB2: [u8; 4] = [10, 99, 0, 3];

    #[test]
    fn parse_v2_vector() {
        let p = Packet::new_checked(&V2[..]).unwrap();
        assert_eq!(p.version(), 2);
        assert_eq!(p.kind(), TYPE_ADVERTISEMENT);
        assert_eq!((p.vrid(), p.priority(), p.addr_count()), (51, 100, 1));
        assert_eq!(p.auth_type(), Some(AUTH_NONE));
        assert_eq!(p.advert_interval_cs(), 100);
        assert_eq!(p.checksum(), 0x7003);
        assert_eq!(
            p.addresses_v4().collect::<Vec<_>>(),
            vec![Ipv4Addr::new(10, 99, 0, 100)]
        );
        assert_eq!(p.auth_data(), Some([0; 8]));
        assert!(p.verify_checksum_v2());
    }

    #[test]
    fn emit_v2_matches_vector() {
        let addrs = [IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100))];
        let r = VrrpRepr {
            version: 2,
            vrid: 51,
            priority: 100,
            advert_interval_cs: 100,
            auth: None,
            addrs: &addrs,
        };
        let mut buf = [0u8; 64];
        let n = r.emit(&mut buf, None).unwrap();
        assert_eq!(&buf[..n], &V2[..]);
        assert_eq!(r.buffer_len(), n);
        // Simple password.
        let r2 = VrrpRepr {
            auth: Some(*b"secret\0\0"),
            ..r
        };
        let n = r2.emit(&mut buf, None).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.auth_type(), Some(AUTH_SIMPLE));
        assert_eq!(p.auth_data(), Some(*b"secret\0\0"));
        assert!(p.verify_checksum_v2());
    }

    #[test]
    fn v3_roundtrip_both_families() {
        let v4 = [
            IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100)),
            IpAddr::V4(Ipv4Addr::new(10, 99, 0, 101)),
        ];
        let r = VrrpRepr {
            version: 3,
            vrid: 51,
            priority: 150,
            advert_interval_cs: 100,
            auth: None,
            addrs: &v4,
        };
        let mut buf = [0u8; 128];
        let ps = IpAddr::V4(Ipv4Addr::from(LB2));
        let pd = IpAddr::V4(Ipv4Addr::from(MCAST_V4));
        let n = r.emit(&mut buf, Some((ps, pd))).unwrap();
        assert_eq!(n, 16);
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(p.version(), 3);
        assert_eq!(p.auth_type(), None);
        assert_eq!(p.auth_data(), None);
        assert_eq!(p.addresses_v4().count(), 2);
        assert!(p.verify_checksum_v3_v4(LB2, MCAST_V4));
        assert!(!p.verify_checksum_v3_v4([10, 99, 0, 2], MCAST_V4));
        // As-v2 checksum variant.
        let n = r.emit(&mut buf, None).unwrap();
        let p = Packet::new_checked(&buf[..n]).unwrap();
        assert!(p.verify_checksum_v2());
        assert!(!p.verify_checksum_v3_v4(LB2, MCAST_V4));

        let v6: [IpAddr; 1] = ["fd99::100".parse().unwrap()];
        let r = VrrpRepr {
            vrid: 52,
            advert_interval_cs: 4095,
            addrs: &v6,
            ..r
        };
        let s: IpAddr = "fe80::99:ff:fe00:2".parse().unwrap();
        let d = IpAddr::V6(Ipv6Addr::from(MCAST_V6));
        let n = r.emit(&mut buf, Some((s, d))).unwrap();
        assert_eq!(n, 24);
        assert!(Packet::new_checked_v6(&buf[..n - 1]).is_err());
        let p = Packet::new_checked_v6(&buf[..n]).unwrap();
        assert_eq!(p.advert_interval_cs(), 4095);
        assert_eq!(p.addresses_v6().collect::<Vec<_>>(), vec![v6[0]]);
        let (IpAddr::V6(s6), IpAddr::V6(d6)) = (s, d) else {
            unreachable!()
        };
        assert!(p.verify_checksum_v3_v6(s6.octets(), d6.octets()));
        // Reserved bits do not leak into the interval.
        buf[4] |= 0xf0;
        assert_eq!(
            Packet::new_checked_v6(&buf[..n])
                .unwrap()
                .advert_interval_cs(),
            4095
        );
    }

    #[test]
    fn emit_rejects_bad_reprs() {
        let v4 = [IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))];
        let v6: [IpAddr; 1] = ["::1".parse().unwrap()];
        let mixed = [v4[0], v6[0]];
        let base = VrrpRepr {
            version: 2,
            vrid: 1,
            priority: 100,
            advert_interval_cs: 100,
            auth: None,
            addrs: &v4,
        };
        let mut buf = [0u8; 64];
        let bad = [
            VrrpRepr { version: 4, ..base },
            VrrpRepr {
                advert_interval_cs: 150,
                ..base
            },
            VrrpRepr {
                advert_interval_cs: 0,
                ..base
            },
            VrrpRepr {
                advert_interval_cs: 25600,
                ..base
            },
            VrrpRepr { addrs: &v6, ..base },
            VrrpRepr {
                addrs: &mixed,
                version: 3,
                ..base
            },
            VrrpRepr {
                version: 3,
                advert_interval_cs: 4096,
                ..base
            },
        ];
        for r in bad {
            assert!(
                matches!(r.emit(&mut buf, None), Err(Error::Malformed(_))),
                "{r:?}"
            );
        }
        let r = VrrpRepr { version: 3, ..base };
        assert!(r.emit(&mut buf, Some((v6[0], v6[0]))).is_err());
        assert!(matches!(
            base.emit(&mut buf[..19], None),
            Err(Error::BufferTooSmall { need: 20, have: 19 })
        ));
        let many = vec![v4[0]; 256];
        assert!(VrrpRepr {
            addrs: &many,
            ..base
        }
        .emit(&mut [0u8; 2000], None)
        .is_err());
    }

    #[test]
    fn rejects_malformed() {
        for n in 0..V2.len() {
            assert!(Packet::new_checked(&V2[..n]).is_err(), "len {n}");
        }
        let mut v = V2;
        v[0] = 0x11;
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Malformed("vrrp version"))
        );
        v[0] = 0x41;
        assert!(Packet::new_checked(&v[..]).is_err());
        v[0] = 0x22;
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Unsupported("vrrp type"))
        );
        v[0] = 0x21;
        v[3] = 2; // count lies: 8 + 8 + 8 > 20
        assert_eq!(
            Packet::new_checked(&v[..]),
            Err(Error::Truncated("vrrp addresses"))
        );
        v[3] = 255;
        assert!(Packet::new_checked(&v[..]).is_err());
        // v2 cannot be checked as IPv6.
        assert_eq!(
            Packet::new_checked_v6(&V2[..]),
            Err(Error::Malformed("vrrp v2 over ipv6"))
        );
        // v3 with the same 20 bytes: 1 IPv4 address fits, 1 IPv6 address does not.
        let mut v3 = V2;
        v3[0] = 0x31;
        assert!(Packet::new_checked(&v3[..12]).is_ok());
        assert!(Packet::new_checked(&v3[..11]).is_err());
        assert!(Packet::new_checked_v6(&v3[..23.min(v3.len())]).is_err());
        // An unchecked view over a lying count still doesn't overrun.
        v3[3] = 200;
        let p = Packet::new_unchecked(&v3[..]);
        assert_eq!(p.addresses_v4().count(), 3);
        assert_eq!(p.addresses_v6().count(), 0);
    }

    #[test]
    fn setters() {
        let mut v = V2;
        let mut p = Packet::new_checked(&mut v[..]).unwrap();
        p.set_priority(0);
        p.set_vrid(52);
        assert!(!p.verify_checksum_v2());
        p.fill_checksum_v2();
        assert!(p.verify_checksum_v2());
        assert_eq!((p.priority(), p.vrid()), (0, 52));
        p.fill_checksum_v3_v6([1; 16], [2; 16]);
        assert!(p.verify_checksum_v3_v6([1; 16], [2; 16]));
        p.set_checksum(0x1234);
        assert_eq!(p.checksum(), 0x1234);
        assert_eq!(virtual_mac(51, false), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(52, true), [0, 0, 0x5e, 0, 2, 52]);
    }
}
