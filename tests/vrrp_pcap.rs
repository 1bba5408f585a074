//! Validation and emission of VRRP against real keepalived 2.2.7 captures
//! (tests/fixtures/vrrp_v2.pcap, vrrp_v3.pcap; see /work/shared/vectors/README.md):
//! every advert keepalived sent is accepted, our emitter reproduces its bytes exactly,
//! and so do our gratuitous ARP and unsolicited NA builders.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use xlb::control::vrrp::codec::{
    build_advert, build_garp, build_unsolicited_na, check_advert, AdvertSpec, DropReason, Expect,
};

/// Frames of a classic little-endian microsecond pcap with Ethernet link type.
fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    assert_eq!(
        u32::from_le_bytes(data[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16;
        out.push(data[off..off + caplen].to_vec());
        off += caplen;
    }
    assert_eq!(off, data.len(), "pcap ends on a record boundary");
    out
}

struct Vrrp {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    payload: Vec<u8>,
    src_mac: [u8; 6],
}

fn vrrp_of(f: &[u8]) -> Option<Vrrp> {
    let src_mac: [u8; 6] = f[6..12].try_into().ok()?;
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 if f[23] == 112 => {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
            let s: [u8; 4] = f[26..30].try_into().ok()?;
            let d: [u8; 4] = f[30..34].try_into().ok()?;
            assert_eq!(f[15], 0xc0, "keepalived sends TOS 0xc0");
            Some(Vrrp {
                src: Ipv4Addr::from(s).into(),
                dst: Ipv4Addr::from(d).into(),
                ttl: f[22],
                payload: f[14 + ihl..14 + total].to_vec(),
                src_mac,
            })
        }
        0x86dd if f[20] == 112 => {
            let plen = usize::from(u16::from_be_bytes([f[18], f[19]]));
            let s: [u8; 16] = f[22..38].try_into().ok()?;
            let d: [u8; 16] = f[38..54].try_into().ok()?;
            Some(Vrrp {
                src: Ipv6Addr::from(s).into(),
                dst: Ipv6Addr::from(d).into(),
                ttl: f[21],
                payload: f[54..54 + plen].to_vec(),
                src_mac,
            })
        }
        _ => None,
    }
}

const LB1: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];
const LB2: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x03];

fn check_capture(name: &str, version: u8) -> BTreeMap<(IpAddr, u8), usize> {
    let vip4: [IpAddr; 1] = ["10.99.0.100".parse().unwrap()];
    let vip6: [IpAddr; 1] = ["fd99::100".parse().unwrap()];
    let mut seen = BTreeMap::new();
    for f in frames(name) {
        let Some(v) = vrrp_of(&f) else { continue };
        let (vrid, vips): (u8, &[IpAddr]) = if v.src.is_ipv4() {
            (51, &vip4)
        } else {
            (52, &vip6)
        };
        let exp = Expect {
            version,
            vrid,
            auth: None,
            interval_cs: 100,
            vips,
        };
        let adv = check_advert(&v.payload, v.src, v.dst, v.ttl, &exp)
            .unwrap_or_else(|e| panic!("{name}: advert from {} dropped: {e:?}", v.src));
        assert_eq!(adv.src, v.src);
        assert_eq!(adv.max_adver_int_cs, 100);
        assert!([LB1, LB2].contains(&v.src_mac), "sent from the real MAC");
        *seen.entry((v.src, adv.priority)).or_insert(0) += 1;

        // Our emitter produces keepalived's bytes exactly.
        let ours = build_advert(&AdvertSpec {
            version,
            vrid,
            priority: adv.priority,
            interval_cs: 100,
            vips,
            auth: None,
            src: v.src,
            dst: v.dst,
            pseudo_header: true,
        });
        assert_eq!(ours, v.payload, "{name}: re-emitted advert from {}", v.src);

        // And each check drops what it should on real bytes.
        assert_eq!(
            check_advert(&v.payload, v.src, v.dst, 64, &exp),
            Err(DropReason::BadTtl)
        );
        let other_vrid = Expect {
            vrid: vrid + 10,
            ..exp
        };
        assert_eq!(
            check_advert(&v.payload, v.src, v.dst, 255, &other_vrid),
            Err(DropReason::WrongVrid)
        );
        let other_version = Expect {
            version: 5 - version,
            ..exp
        };
        assert_eq!(
            check_advert(&v.payload, v.src, v.dst, 255, &other_version),
            Err(DropReason::BadVersion)
        );
        let no_vips = Expect { vips: &[], ..exp };
        assert_eq!(
            check_advert(&v.payload, v.src, v.dst, 255, &no_vips),
            Err(DropReason::AddressMismatch)
        );
        if version == 3 {
            // The pseudo-header is in the checksum: a different source breaks it.
            let wrong_src: IpAddr = if v.src.is_ipv4() {
                "10.99.0.77".parse().unwrap()
            } else {
                "fe80::77".parse().unwrap()
            };
            assert_eq!(
                check_advert(&v.payload, wrong_src, v.dst, 255, &exp),
                Err(DropReason::BadChecksum)
            );
        }
    }
    seen
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn keepalived_v2_adverts_accepted_and_reproduced() {
    let seen = check_capture("vrrp_v2.pcap", 2);
    let want: BTreeMap<(IpAddr, u8), usize> = [
        ((ip("10.99.0.2"), 0), 4),
        ((ip("10.99.0.2"), 150), 59),
        ((ip("10.99.0.3"), 0), 1),
        ((ip("10.99.0.3"), 100), 84),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn keepalived_v3_adverts_accepted_and_reproduced() {
    let seen = check_capture("vrrp_v3.pcap", 3);
    let want: BTreeMap<(IpAddr, u8), usize> = [
        ((ip("10.99.0.2"), 0), 4),
        ((ip("10.99.0.2"), 150), 59),
        ((ip("10.99.0.3"), 0), 1),
        ((ip("10.99.0.3"), 100), 84),
        ((ip("fe80::99:ff:fe00:2"), 0), 4),
        ((ip("fe80::99:ff:fe00:2"), 150), 53),
        ((ip("fe80::99:ff:fe00:3"), 0), 1),
        ((ip("fe80::99:ff:fe00:3"), 100), 90),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, want);
}

#[test]
fn gratuitous_arps_and_unsolicited_nas_match_keepalived() {
    let vip4: Ipv4Addr = "10.99.0.100".parse().unwrap();
    let vip6: Ipv6Addr = "fd99::100".parse().unwrap();
    let (mut garps, mut nas) = (0, 0);
    for name in ["vrrp_v2.pcap", "vrrp_v3.pcap"] {
        for f in frames(name) {
            let mac: [u8; 6] = f[6..12].try_into().unwrap();
            if ![LB1, LB2].contains(&mac) {
                continue;
            }
            match u16::from_be_bytes([f[12], f[13]]) {
                0x0806 if f[28..32] == vip4.octets() && f[38..42] == vip4.octets() => {
                    assert_eq!(f, build_garp(mac, vip4), "{name}: gratuitous ARP");
                    garps += 1;
                }
                0x86dd if f[20] == 58 && f[54] == 136 => {
                    assert_eq!(f, build_unsolicited_na(mac, vip6), "{name}: unsolicited NA");
                    nas += 1;
                }
                _ => {}
            }
        }
    }
    // Every transition sends them in bursts of 5 (keepalived's garp_master_repeat).
    assert!(garps > 0 && garps % 5 == 0, "{garps} gratuitous ARPs");
    assert!(nas > 0 && nas % 5 == 0, "{nas} unsolicited NAs");
}
