//! Interop test: real keepalived 2.2.7 VRRP captures (tests/fixtures/, from
//! /work/shared/vectors) parsed with xlb's wire views. Every frame in the captures must
//! be understood: VRRP adverts (v2; v3 over IPv4 and IPv6) with valid checksums by the
//! right rule, gratuitous ARPs, ARP traffic, unsolicited NAs and NSs. Adverts, GARPs,
//! ARP replies and NAs are rebuilt with our emitters and must match byte for byte.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xlb::wire::ethernet::{self, Frame};
use xlb::wire::vrrp::{self, VrrpRepr};
use xlb::wire::{arp, icmp, ipv4, ipv6};

/// Reads a classic (libpcap) capture: 24-byte global header, then 16-byte record headers
/// each followed by `incl_len` bytes. Accepts both byte orders and both timestamp
/// resolutions; requires link type 1 (Ethernet).
fn read_pcap(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(data.len() >= 24, "{name}: no global header");
    let magic = [data[0], data[1], data[2], data[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        m => panic!("{name}: not a classic pcap (magic {m:02x?})"),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(&data, 20), 1, "{name}: link type must be Ethernet");
    let mut frames = Vec::new();
    let mut off = 24;
    while off < data.len() {
        assert!(off + 16 <= data.len(), "{name}: truncated record header");
        let incl = u32_at(&data, off + 8) as usize;
        let start = off + 16;
        assert!(start + incl <= data.len(), "{name}: truncated record");
        frames.push(data[start..start + incl].to_vec());
        off = start + incl;
    }
    frames
}

const LB1_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];
const LB2_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x03];
const VIP4: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 100);

#[derive(Default, Debug)]
struct Seen {
    frames: usize,
    adverts_v4: usize,
    adverts_v6: usize,
    reemitted: usize,
    garps: usize,
    arp_replies: usize,
    arp_requests: usize,
    nas: usize,
    nss: usize,
    vrids: BTreeSet<u8>,
    prios_v4: BTreeSet<u8>,
    prios_v6: BTreeSet<u8>,
}

fn check_arp(frame: &[u8], f: &Frame<&[u8]>, seen: &mut Seen) {
    let a = arp::Packet::new_checked(f.payload()).expect("ARP parses");
    let mut buf = [0u8; 64];
    if a.is_gratuitous() {
        assert_eq!(a.op(), arp::OP_REQUEST);
        assert_eq!(a.sender_ipv4(), VIP4);
        assert!(a.sender_hw() == LB1_MAC || a.sender_hw() == LB2_MAC);
        let n = arp::build_gratuitous(&mut buf, a.sender_hw(), a.sender_ip()).unwrap();
        assert_eq!(&buf[..n], frame, "our GARP differs from keepalived's");
        seen.garps += 1;
    } else if a.op() == arp::OP_REPLY {
        let n = arp::build_reply(
            &mut buf,
            a.sender_hw(),
            a.sender_ip(),
            a.target_hw(),
            a.target_ip(),
        )
        .unwrap();
        assert_eq!(&buf[..n], frame, "our ARP reply differs from the kernel's");
        seen.arp_replies += 1;
    } else {
        assert_eq!(a.op(), arp::OP_REQUEST);
        if f.dst() == ethernet::BROADCAST && a.target_hw() == [0; 6] {
            let n =
                arp::build_request(&mut buf, a.sender_hw(), a.sender_ip(), a.target_ip()).unwrap();
            assert_eq!(
                &buf[..n],
                frame,
                "our ARP request differs from the kernel's"
            );
        }
        seen.arp_requests += 1;
    }
}

/// Rebuilds an advert from the parsed fields and compares bytes.
fn reemit(p: &vrrp::Packet<&[u8]>, addrs: &[IpAddr], pseudo: Option<(IpAddr, IpAddr)>) {
    let repr = VrrpRepr {
        version: p.version(),
        vrid: p.vrid(),
        priority: p.priority(),
        advert_interval_cs: p.advert_interval_cs(),
        auth: match p.auth_type() {
            Some(vrrp::AUTH_SIMPLE) => p.auth_data(),
            _ => None,
        },
        addrs,
    };
    let mut buf = [0u8; 128];
    let n = repr.emit(&mut buf, pseudo).unwrap();
    assert_eq!(&buf[..n], p.as_bytes(), "re-emitted advert differs");
}

fn check_ipv4(f: &Frame<&[u8]>, version: u8, seen: &mut Seen) {
    let ip = ipv4::Packet::new_checked(f.payload()).expect("IPv4 parses");
    assert!(ip.verify_checksum());
    assert_eq!(
        ip.protocol(),
        ipv4::PROTO_VRRP,
        "only VRRP over IPv4 in the capture"
    );
    assert_eq!(ip.ttl(), 255);
    assert_eq!(ip.dscp_ecn(), 0xc0);
    assert_eq!(ip.dst_addr(), vrrp::MCAST_V4);
    assert_eq!(f.dst(), [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12]);
    let src = ip.src_addr();
    assert!(
        (f.src() == LB1_MAC && src == [10, 99, 0, 2])
            || (f.src() == LB2_MAC && src == [10, 99, 0, 3]),
        "advert from real MAC and address of lb1/lb2"
    );
    let v = vrrp::Packet::new_checked(ip.payload()).expect("VRRP parses");
    assert_eq!(v.version(), version);
    assert_eq!(v.kind(), vrrp::TYPE_ADVERTISEMENT);
    assert_eq!(v.vrid(), 51);
    assert_eq!(v.advert_interval_cs(), 100);
    assert_eq!(v.addresses_v4().collect::<Vec<_>>(), vec![VIP4]);
    let pseudo = if version == 2 {
        assert!(v.verify_checksum_v2(), "v2 checksum");
        assert_eq!(v.auth_type(), Some(vrrp::AUTH_NONE));
        assert_eq!(v.auth_data(), Some([0; 8]));
        None
    } else {
        assert!(
            v.verify_checksum_v3_v4(src, ip.dst_addr()),
            "v3/IPv4 pseudo-header checksum"
        );
        assert!(
            !v.verify_checksum_v2(),
            "keepalived's v3 checksum includes the pseudo-header"
        );
        assert_eq!(v.auth_type(), None);
        Some((IpAddr::from(src), IpAddr::from(ip.dst_addr())))
    };
    reemit(&v, &[IpAddr::V4(VIP4)], pseudo);
    seen.reemitted += 1;
    seen.vrids.insert(v.vrid());
    seen.prios_v4.insert(v.priority());
    seen.adverts_v4 += 1;
}

fn check_ipv6(frame: &[u8], f: &Frame<&[u8]>, seen: &mut Seen) {
    let ip = ipv6::Packet::new_checked(f.payload()).expect("IPv6 parses");
    assert_eq!(ip.hop_limit(), 255);
    let up = ip.upper_layer().expect("extension walk");
    assert!(up.fragment.is_none());
    let body = ip.data_from(up.offset);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let vip6: Ipv6Addr = "fd99::100".parse().unwrap();
    match up.protocol {
        ipv6::NH_VRRP => {
            assert_eq!(dst, vrrp::MCAST_V6);
            assert_eq!(f.dst(), [0x33, 0x33, 0, 0, 0, 0x12]);
            assert!(f.src() == LB1_MAC || f.src() == LB2_MAC);
            let v = vrrp::Packet::new_checked_v6(body).expect("VRRP/IPv6 parses");
            assert_eq!(v.version(), 3);
            assert_eq!(v.vrid(), 52);
            assert_eq!(v.advert_interval_cs(), 100);
            assert_eq!(v.addresses_v6().collect::<Vec<_>>(), vec![vip6]);
            assert!(
                v.verify_checksum_v3_v6(src, dst),
                "v3/IPv6 pseudo-header checksum"
            );
            reemit(
                &v,
                &[IpAddr::V6(vip6)],
                Some((IpAddr::from(src), IpAddr::from(dst))),
            );
            seen.reemitted += 1;
            seen.vrids.insert(v.vrid());
            seen.prios_v6.insert(v.priority());
            seen.adverts_v6 += 1;
        }
        ipv6::NH_ICMPV6 => {
            let m = icmp::Packet::new_checked(body).expect("ICMPv6 parses");
            assert!(m.verify_checksum_v6(src, dst), "ICMPv6 checksum");
            match m.msg_type() {
                icmp::ICMPV6_NEIGHBOR_ADVERT => {
                    let na = icmp::NeighborAdvert::new_checked(body).expect("NA parses");
                    assert_eq!(na.target(), vip6.octets());
                    assert!(na.override_flag() && !na.solicited());
                    assert_eq!(na.target_lladdr(), Some(f.src()));
                    assert_eq!(dst, icmp::ALL_NODES);
                    let mut buf = [0u8; 128];
                    let n = icmp::build_unsolicited_na(
                        &mut buf,
                        f.src(),
                        src,
                        na.target(),
                        na.router(),
                    )
                    .unwrap();
                    assert_eq!(&buf[..n], frame, "our NA differs from keepalived's");
                    seen.nas += 1;
                }
                icmp::ICMPV6_NEIGHBOR_SOLICIT => {
                    let ns = icmp::NeighborSolicit::new_checked(body).expect("NS parses");
                    // DAD probes for the hosts' own addresses: a unicast target.
                    assert_ne!(ns.target()[0], 0xff);
                    assert_ne!(ns.target(), [0; 16]);
                    seen.nss += 1;
                }
                t => panic!("unexpected ICMPv6 type {t}"),
            }
        }
        p => panic!("unexpected IPv6 upper layer {p}"),
    }
}

fn check_capture(name: &str, version: u8) -> Seen {
    let frames = read_pcap(name);
    let mut seen = Seen::default();
    for (i, frame) in frames.iter().enumerate() {
        let f = Frame::new_checked(&frame[..]).unwrap_or_else(|e| panic!("frame {i}: {e}"));
        assert_eq!(f.vlan(), None);
        match f.ethertype() {
            ethernet::ETHERTYPE_ARP => check_arp(frame, &f, &mut seen),
            ethernet::ETHERTYPE_IPV4 => check_ipv4(&f, version, &mut seen),
            ethernet::ETHERTYPE_IPV6 => check_ipv6(frame, &f, &mut seen),
            t => panic!("{name} frame {i}: unexpected ethertype {t:#06x}"),
        }
        seen.frames += 1;
    }
    assert_eq!(seen.frames, frames.len());
    eprintln!("{name}: {seen:?}");
    seen
}

#[test]
fn vrrp_v2_capture() {
    let s = check_capture("vrrp_v2.pcap", 2);
    assert!(s.frames > 0 && s.adverts_v4 > 0, "{s:?}");
    assert_eq!(s.adverts_v6, 0);
    assert_eq!(s.reemitted, s.adverts_v4);
    assert_eq!(s.vrids, BTreeSet::from([51]));
    assert_eq!(s.prios_v4, BTreeSet::from([0, 100, 150]));
    assert!(
        s.garps > 0 && s.arp_replies > 0 && s.arp_requests > 0,
        "{s:?}"
    );
    assert_eq!(s.nas, 0, "{s:?}");
}

#[test]
fn vrrp_v3_capture() {
    let s = check_capture("vrrp_v3.pcap", 3);
    assert!(s.adverts_v4 > 0 && s.adverts_v6 > 0, "{s:?}");
    assert_eq!(s.reemitted, s.adverts_v4 + s.adverts_v6);
    assert_eq!(s.vrids, BTreeSet::from([51, 52]));
    assert_eq!(s.prios_v4, BTreeSet::from([0, 100, 150]));
    assert_eq!(s.prios_v6, BTreeSet::from([0, 100, 150]));
    assert!(s.garps > 0 && s.nas > 0, "{s:?}");
}

#[test]
fn pcap_reader_accounts_for_every_byte() {
    // The reader itself: records tile the file exactly, nothing is skipped.
    let frames = read_pcap("vrrp_v2.pcap");
    let total: usize = frames.iter().map(|f| f.len() + 16).sum::<usize>() + 24;
    let on_disk = std::fs::metadata(format!(
        "{}/tests/fixtures/vrrp_v2.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .len() as usize;
    assert_eq!(total, on_disk, "every byte of the file is accounted for");
}
