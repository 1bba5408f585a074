//! VRRP advert validation and emission, and the gratuitous ARP / unsolicited neighbour
//! advertisement frames sent on becoming master, byte-compatible with keepalived 2.2.
//!
//! Guarantees: [`check_advert`] never panics on any input; it returns the first reason
//! to drop in the order TTL, length, version/type, checksum, VRID, auth, interval,
//! address list. Emitters produce exactly what keepalived sends (checked against real
//! captures in `tests/vrrp_pcap.rs`).
//!
//! A thin layer over [`crate::wire`]: parsing, checksums and frame building are the wire
//! views and builders (`wire::vrrp`, `wire::arp`, `wire::icmp`); this module adds the
//! per-instance expectations and maps wire errors to [`DropReason`]s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::machine::Advert;
use crate::wire::vrrp::{self, Packet, VrrpRepr};
use crate::wire::{arp, icmp, Error as WireError};

/// IP protocol number of VRRP.
pub const PROTO_VRRP: u8 = vrrp::PROTO_VRRP;
/// IPv4 VRRP multicast group.
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 VRRP multicast group.
pub const GROUP_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// IPv4 TOS / IPv6 traffic class of adverts (internetwork control).
pub const TOS: u8 = 0xc0;
/// Required TTL / hop limit.
pub const TTL: u8 = 255;

/// Why a received packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// TTL / hop limit other than 255.
    BadTtl,
    /// Shorter than its header and address list say.
    Truncated,
    /// Version other than the instance's.
    BadVersion,
    /// Type other than 1 (advertisement).
    BadType,
    /// Checksum wrong.
    BadChecksum,
    /// Another virtual router.
    WrongVrid,
    /// v2 auth type or password differ.
    AuthMismatch,
    /// v2 advert interval differs from ours.
    IntervalMismatch,
    /// The address list differs from our VIPs.
    AddressMismatch,
}

impl DropReason {
    /// Short label (for logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::BadTtl => "bad_ttl",
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadType => "bad_type",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::WrongVrid => "wrong_vrid",
            DropReason::AuthMismatch => "auth_mismatch",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::AddressMismatch => "address_mismatch",
        }
    }
}

/// What a received advert must match.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// 2 or 3.
    pub version: u8,
    /// Our VRID.
    pub vrid: u8,
    /// v2 simple password, padded to 8 bytes (None: auth type 0).
    pub auth: Option<[u8; 8]>,
    /// Our advert interval in centiseconds (v2 requires equality, in whole seconds).
    pub interval_cs: u16,
    /// Our VIPs of the instance's family.
    pub vips: &'a [IpAddr],
}

/// The 8-byte auth data keepalived sends for a password (zero padded, truncated at 8).
pub fn auth_data(pass: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(pass.as_bytes()) {
        *o = *b;
    }
    out
}

/// Validates one VRRP message (the IP payload) received from `src` to `dst` with the
/// given TTL / hop limit, and returns the advert for the state machine.
pub fn check_advert(
    vrrp: &[u8],
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    exp: &Expect<'_>,
) -> Result<Advert, DropReason> {
    if ttl != TTL {
        return Err(DropReason::BadTtl);
    }
    if vrrp.len() < vrrp::HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    // Our version before anything else, so a v2/v3 mix-up is reported as such.
    if Packet::new_unchecked(vrrp).version() != exp.version {
        return Err(DropReason::BadVersion);
    }
    // With the version settled, the view checks the type and then the length.
    let checked = match src {
        IpAddr::V4(_) => Packet::new_checked(vrrp),
        IpAddr::V6(_) => Packet::new_checked_v6(vrrp),
    };
    let p = checked.map_err(|e| match e {
        WireError::Truncated(_) => DropReason::Truncated,
        WireError::Unsupported(_) => DropReason::BadType,
        _ => DropReason::BadVersion,
    })?;
    let ok = match (p.version(), src, dst) {
        (2, _, _) => p.verify_checksum_v2(),
        // keepalived's `vrrp_v3_checksum_as_v2` peers are accepted too.
        (_, IpAddr::V4(s), IpAddr::V4(d)) => {
            p.verify_checksum_v3_v4(s.octets(), d.octets()) || p.verify_checksum_v2()
        }
        (_, IpAddr::V6(s), IpAddr::V6(d)) => p.verify_checksum_v3_v6(s.octets(), d.octets()),
        _ => false,
    };
    if !ok {
        return Err(DropReason::BadChecksum);
    }
    if p.vrid() != exp.vrid {
        return Err(DropReason::WrongVrid);
    }
    if let Some(ty) = p.auth_type() {
        let auth_ok = match exp.auth {
            None => ty == vrrp::AUTH_NONE,
            Some(pass) => ty == vrrp::AUTH_SIMPLE && p.auth_data() == Some(pass),
        };
        if !auth_ok {
            return Err(DropReason::AuthMismatch);
        }
        if p.advert_interval_cs() != exp.interval_cs {
            return Err(DropReason::IntervalMismatch);
        }
    }
    let ours = exp.vips.iter().filter(|v| v.is_ipv4() == src.is_ipv4());
    let listed = |a: IpAddr| exp.vips.contains(&a);
    let matches = usize::from(p.addr_count()) == ours.count()
        && match src {
            IpAddr::V4(_) => p.addresses_v4().map(IpAddr::V4).all(listed),
            IpAddr::V6(_) => p.addresses_v6().map(IpAddr::V6).all(listed),
        };
    if !matches {
        return Err(DropReason::AddressMismatch);
    }
    Ok(Advert {
        src,
        priority: p.priority(),
        max_adver_int_cs: p.advert_interval_cs(),
    })
}

/// What to put in an advert.
#[derive(Clone, Copy, Debug)]
pub struct AdvertSpec<'a> {
    /// 2 or 3.
    pub version: u8,
    /// VRID.
    pub vrid: u8,
    /// Priority field.
    pub priority: u8,
    /// Advert interval in centiseconds (v2 sends whole seconds).
    pub interval_cs: u16,
    /// Addresses (only those of the source's family are written).
    pub vips: &'a [IpAddr],
    /// v2 password (auth type 1) or none (auth type 0).
    pub auth: Option<[u8; 8]>,
    /// Source address (for the v3 pseudo-header).
    pub src: IpAddr,
    /// Destination address (for the v3 pseudo-header).
    pub dst: IpAddr,
    /// v3 over IPv4: include the pseudo-header in the checksum (keepalived's default).
    pub pseudo_header: bool,
}

/// Builds the VRRP message (the IP payload) of an advert.
///
/// The interval is brought into the version's range first (v2: whole seconds 1..=255,
/// v3: 12 bits) and at most 255 addresses are written. Empty only for a spec the config
/// never produces (a version other than 2 or 3, or v2 over IPv6).
pub fn build_advert(spec: &AdvertSpec<'_>) -> Vec<u8> {
    let v4 = spec.src.is_ipv4();
    let addrs: Vec<IpAddr> = spec
        .vips
        .iter()
        .copied()
        .filter(|v| v.is_ipv4() == v4)
        .take(255)
        .collect();
    let advert_interval_cs = if spec.version == 2 {
        (spec.interval_cs / 100).clamp(1, 255) * 100
    } else {
        spec.interval_cs & 0x0fff
    };
    let repr = VrrpRepr {
        version: spec.version,
        vrid: spec.vrid,
        priority: spec.priority,
        advert_interval_cs,
        auth: spec.auth,
        addrs: &addrs,
    };
    let pseudo = (spec.version == 3 && (!v4 || spec.pseudo_header)).then_some((spec.src, spec.dst));
    let mut out = vec![0; repr.buffer_len()];
    match repr.emit(&mut out, pseudo) {
        Ok(n) => out.truncate(n),
        Err(_) => out.clear(),
    }
    out
}

// The fixed frame sizes below are the wire builders' exact lengths, so they cannot fail.
const _: () = assert!(arp::FRAME_LEN == 42 && icmp::NA_FRAME_LEN == 86);

/// A gratuitous ARP as keepalived sends it: Ethernet broadcast, ARP request with
/// sender = target = `ip`, target hardware address ff:ff:ff:ff:ff:ff.
pub fn build_garp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    let _ = arp::build_gratuitous(&mut f, mac, ip.octets());
    f
}

/// An unsolicited neighbour advertisement as keepalived sends it: from `ip` to ff02::1,
/// hop limit 255, flags Router and Override, target link-layer address option.
pub fn build_unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 86] {
    let mut f = [0u8; 86];
    let _ = icmp::build_unsolicited_na(&mut f, mac, ip.octets(), ip.octets(), true);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn spec<'a>(version: u8, vips: &'a [IpAddr], src: &str, dst: &str) -> AdvertSpec<'a> {
        AdvertSpec {
            version,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            vips,
            auth: None,
            src: ip(src),
            dst: ip(dst),
            pseudo_header: true,
        }
    }

    fn expect(version: u8, vips: &[IpAddr]) -> Expect<'_> {
        Expect {
            version,
            vrid: 51,
            auth: None,
            interval_cs: 100,
            vips,
        }
    }

    #[test]
    fn v2_advert_matches_keepalived_bytes() {
        // From vrrp_v2.pcap: 10.99.0.3 -> 224.0.0.18, vrid 51, prio 100, 1 s, no auth.
        let vips = [ip("10.99.0.100")];
        let got = build_advert(&spec(2, &vips, "10.99.0.3", "224.0.0.18"));
        let want = [
            0x21, 0x33, 0x64, 0x01, 0x00, 0x01, 0x70, 0x03, 0x0a, 0x63, 0x00, 0x64, 0, 0, 0, 0, 0,
            0, 0, 0,
        ];
        assert_eq!(got, want);
        let a = check_advert(
            &got,
            ip("10.99.0.3"),
            ip("224.0.0.18"),
            255,
            &expect(2, &vips),
        );
        assert_eq!(a.unwrap().priority, 100);
    }

    #[test]
    fn round_trip_and_every_drop_reason() {
        let vips = [ip("10.99.0.100")];
        let (s, d) = (ip("10.99.0.3"), ip("224.0.0.18"));
        let e = expect(3, &vips);
        let good = build_advert(&spec(3, &vips, "10.99.0.3", "224.0.0.18"));
        assert_eq!(
            check_advert(&good, s, d, 255, &e),
            Ok(Advert {
                src: s,
                priority: 100,
                max_adver_int_cs: 100
            })
        );
        let mut as_v2 = spec(3, &vips, "10.99.0.3", "224.0.0.18");
        as_v2.pseudo_header = false;
        let plain = build_advert(&as_v2);
        assert_ne!(plain, good);
        assert!(
            check_advert(&plain, s, d, 255, &e).is_ok(),
            "v3/IPv4 without pseudo-header"
        );
        let cases: Vec<(&str, Vec<u8>, u8, Expect, DropReason)> = vec![
            ("ttl 64", good.clone(), 64, e, DropReason::BadTtl),
            ("short", good[..7].to_vec(), 255, e, DropReason::Truncated),
            (
                "count beyond end",
                good[..10].to_vec(),
                255,
                e,
                DropReason::Truncated,
            ),
            (
                "version",
                good.clone(),
                255,
                Expect { version: 2, ..e },
                DropReason::BadVersion,
            ),
            (
                "type",
                {
                    let mut p = good.clone();
                    p[0] = 0x32;
                    p
                },
                255,
                e,
                DropReason::BadType,
            ),
            (
                "checksum",
                {
                    let mut p = good.clone();
                    p[2] = 99;
                    p
                },
                255,
                e,
                DropReason::BadChecksum,
            ),
            (
                "vrid",
                good.clone(),
                255,
                Expect { vrid: 52, ..e },
                DropReason::WrongVrid,
            ),
            (
                "addresses",
                good.clone(),
                255,
                Expect { vips: &[], ..e },
                DropReason::AddressMismatch,
            ),
        ];
        for (what, pkt, ttl, exp, want) in cases {
            assert_eq!(check_advert(&pkt, s, d, ttl, &exp), Err(want), "{what}");
        }
    }

    #[test]
    fn v2_auth_and_interval() {
        let vips = [ip("10.99.0.100")];
        let (s, d) = (ip("10.99.0.3"), ip("224.0.0.18"));
        let mut sp = spec(2, &vips, "10.99.0.3", "224.0.0.18");
        sp.auth = Some(auth_data("secret"));
        let pkt = build_advert(&sp);
        assert_eq!(pkt[4], 1);
        assert_eq!(&pkt[12..20], b"secret\0\0");
        let e = Expect {
            auth: Some(auth_data("secret")),
            ..expect(2, &vips)
        };
        assert!(check_advert(&pkt, s, d, 255, &e).is_ok());
        let wrong = Expect {
            auth: Some(auth_data("other")),
            ..e
        };
        assert_eq!(
            check_advert(&pkt, s, d, 255, &wrong),
            Err(DropReason::AuthMismatch)
        );
        let none = Expect { auth: None, ..e };
        assert_eq!(
            check_advert(&pkt, s, d, 255, &none),
            Err(DropReason::AuthMismatch)
        );
        let slow = Expect {
            interval_cs: 200,
            ..e
        };
        assert_eq!(
            check_advert(&pkt, s, d, 255, &slow),
            Err(DropReason::IntervalMismatch)
        );
        assert_eq!(auth_data("longerthan8"), *b"longerth");
    }

    #[test]
    fn v6_pseudo_header_required() {
        let vips = [ip("fd99::100")];
        let (s, d) = (ip("fe80::99:ff:fe00:3"), ip("ff02::12"));
        let pkt = build_advert(&spec(3, &vips, "fe80::99:ff:fe00:3", "ff02::12"));
        assert_eq!(pkt.len(), 24);
        let e = expect(3, &vips);
        assert!(check_advert(&pkt, s, d, 255, &e).is_ok());
        assert_eq!(
            check_advert(&pkt, ip("fe80::1"), d, 255, &e),
            Err(DropReason::BadChecksum)
        );
    }

    #[test]
    fn garbage_truncations_and_corruptions_are_dropped() {
        let vips = [ip("10.99.0.100"), ip("fd99::100")];
        let mut x: u32 = 0x1234_5678;
        let mut checked = 0;
        for len in 0..64 {
            for _ in 0..200 {
                let pkt: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        x as u8
                    })
                    .collect();
                for v in [2, 3] {
                    let vrid = pkt.get(1).copied().unwrap_or(0);
                    let e = Expect {
                        version: v,
                        vrid,
                        ..expect(v, &vips)
                    };
                    assert!(check_advert(&pkt, ip("10.0.0.1"), ip("224.0.0.18"), 255, &e).is_err());
                    assert!(check_advert(&pkt, ip("fe80::1"), ip("ff02::12"), 255, &e).is_err());
                    checked += 2;
                }
            }
        }
        assert_eq!(checked, 64 * 200 * 4);
        let v4 = [ip("10.99.0.100")];
        let good = build_advert(&spec(3, &v4, "10.99.0.3", "224.0.0.18"));
        let e = expect(3, &v4);
        let (s, d) = (ip("10.99.0.3"), ip("224.0.0.18"));
        for cut in 0..good.len() {
            assert_eq!(
                check_advert(&good[..cut], s, d, 255, &e),
                Err(DropReason::Truncated)
            );
        }
        for i in 0..good.len() {
            let mut p = good.clone();
            p[i] ^= 0xff;
            assert!(
                check_advert(&p, s, d, 255, &e).is_err(),
                "byte {i} flipped accepted"
            );
        }
    }
}
