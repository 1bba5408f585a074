//! VRRP advert validation and emission, and the gratuitous ARP / unsolicited neighbour
//! advertisement frames sent on becoming master, byte-compatible with keepalived 2.2.
//!
//! Guarantees: [`check_advert`] never panics on any input; it returns the first reason
//! to drop in the order TTL, length, version/type, checksum, VRID, auth, interval,
//! address list. Emitters produce exactly what keepalived sends (checked against real
//! captures in `tests/vrrp_pcap.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::machine::Advert;

/// IP protocol number of VRRP.
pub const PROTO_VRRP: u8 = 112;
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

fn sum16(data: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

fn pseudo(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> u32 {
    let mut acc = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum16(&s.octets()) + sum16(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => fold(sum16(&s.octets()) + sum16(&d.octets())) as u32,
        _ => 0,
    };
    acc += u32::from(proto) + (len as u32 & 0xffff) + (len as u32 >> 16);
    acc
}

/// Internet checksum of `data` with an optional pseudo-header sum added.
fn checksum(pseudo_sum: u32, data: &[u8]) -> u16 {
    !fold(pseudo_sum + fold(sum16(data)) as u32)
}

fn verifies(pseudo_sum: u32, data: &[u8]) -> bool {
    fold(pseudo_sum + fold(sum16(data)) as u32) == 0xffff
}

fn addr_len(ip: IpAddr) -> usize {
    if ip.is_ipv4() {
        4
    } else {
        16
    }
}

fn read_addr(b: &[u8], v4: bool) -> Option<IpAddr> {
    if v4 {
        let o: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(o)))
    } else {
        let o: [u8; 16] = b.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(o)))
    }
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
    if vrrp.len() < 8 {
        return Err(DropReason::Truncated);
    }
    let version = vrrp[0] >> 4;
    if version != exp.version {
        return Err(DropReason::BadVersion);
    }
    if vrrp[0] & 0x0f != 1 {
        return Err(DropReason::BadType);
    }
    let v4 = src.is_ipv4();
    let count = usize::from(vrrp[3]);
    let auth_len = if version == 2 { 8 } else { 0 };
    let need = 8 + count * addr_len(src) + auth_len;
    if vrrp.len() < need {
        return Err(DropReason::Truncated);
    }
    let ok = match (version, v4) {
        (2, _) => verifies(0, vrrp),
        (_, true) => verifies(pseudo(src, dst, PROTO_VRRP, vrrp.len()), vrrp) || verifies(0, vrrp),
        (_, false) => verifies(pseudo(src, dst, PROTO_VRRP, vrrp.len()), vrrp),
    };
    if !ok {
        return Err(DropReason::BadChecksum);
    }
    if vrrp[1] != exp.vrid {
        return Err(DropReason::WrongVrid);
    }
    let priority = vrrp[2];
    let max_adver_int_cs = if version == 2 {
        let auth_off = need - 8;
        let (ty, data) = (vrrp[4], &vrrp[auth_off..need]);
        let auth_ok = match exp.auth {
            None => ty == 0,
            Some(pass) => ty == 1 && data == pass,
        };
        if !auth_ok {
            return Err(DropReason::AuthMismatch);
        }
        if u16::from(vrrp[5]) * 100 != exp.interval_cs {
            return Err(DropReason::IntervalMismatch);
        }
        u16::from(vrrp[5]) * 100
    } else {
        u16::from_be_bytes([vrrp[4], vrrp[5]]) & 0x0fff
    };
    let step = addr_len(src);
    let mut matches = count == exp.vips.iter().filter(|v| v.is_ipv4() == v4).count();
    for i in 0..count {
        let a = read_addr(&vrrp[8 + i * step..], v4);
        if !a.is_some_and(|a| exp.vips.contains(&a)) {
            matches = false;
        }
    }
    if !matches {
        return Err(DropReason::AddressMismatch);
    }
    Ok(Advert {
        src,
        priority,
        max_adver_int_cs,
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
pub fn build_advert(spec: &AdvertSpec<'_>) -> Vec<u8> {
    let v4 = spec.src.is_ipv4();
    let vips: Vec<IpAddr> = spec
        .vips
        .iter()
        .copied()
        .filter(|v| v.is_ipv4() == v4)
        .take(255)
        .collect();
    let mut out = Vec::with_capacity(8 + vips.len() * 16 + 8);
    out.push((spec.version << 4) | 1);
    out.push(spec.vrid);
    out.push(spec.priority);
    out.push(vips.len() as u8);
    if spec.version == 2 {
        out.push(u8::from(spec.auth.is_some()));
        out.push((spec.interval_cs / 100).clamp(1, 255) as u8);
    } else {
        out.extend_from_slice(&(spec.interval_cs & 0x0fff).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0]);
    for v in &vips {
        match v {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    if spec.version == 2 {
        out.extend_from_slice(&spec.auth.unwrap_or([0; 8]));
    }
    let ps = if spec.version == 3 && (!v4 || spec.pseudo_header) {
        pseudo(spec.src, spec.dst, PROTO_VRRP, out.len())
    } else {
        0
    };
    let c = checksum(ps, &out);
    out[6..8].copy_from_slice(&c.to_be_bytes());
    out
}

/// A gratuitous ARP as keepalived sends it: Ethernet broadcast, ARP request with
/// sender = target = `ip`, target hardware address ff:ff:ff:ff:ff:ff.
pub fn build_garp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[32..38].copy_from_slice(&[0xff; 6]);
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement as keepalived sends it: from `ip` to ff02::1,
/// hop limit 255, flags Router and Override, target link-layer address option.
pub fn build_unsolicited_na(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 86] {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut f = [0u8; 86];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    f[14] = 0x60;
    f[18..20].copy_from_slice(&32u16.to_be_bytes());
    f[20] = 58;
    f[21] = 255;
    f[22..38].copy_from_slice(&ip.octets());
    f[38..54].copy_from_slice(&all_nodes.octets());
    let icmp = &mut f[54..86];
    icmp[0] = 136;
    icmp[4] = 0xa0; // Router | Override
    icmp[8..24].copy_from_slice(&ip.octets());
    icmp[24] = 2; // target link-layer address
    icmp[25] = 1;
    icmp[26..32].copy_from_slice(&mac);
    let c = checksum(pseudo(IpAddr::V6(ip), IpAddr::V6(all_nodes), 58, 32), icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
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
