//! Fixture tables for `forward()`, in the style of Katran's `lib/testing`: each case is
//! `{ what, input frame, expected verdict, expected output frame }`, plus scenario tests
//! for flow stickiness, draining, failures and fragments, and a no-panic property test.

use std::net::IpAddr;

use etherparse::PacketBuilder;
use proptest::prelude::*;
use xlb::dataplane::forward::{forward, DropReason, Verdict};
use xlb::lb::flow::{FlowTable, FlowTimeouts};
use xlb::lb::tables::{
    Backend, BackendState, OnDown, Service, Snapshot, NO_BACKEND, PROTO_TCP, PROTO_UDP,
};

const CLIENT_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x10];
const DIRECTOR_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];
const RS: [[u8; 6]; 3] = [
    [0x02, 0x99, 0, 0, 0, 0x11],
    [0x02, 0x99, 0, 0, 0, 0x12],
    [0x02, 0x99, 0, 0, 0, 0x13],
];
const CLIENT4: [u8; 4] = [10, 99, 0, 10];
const VIP4: [u8; 4] = [10, 99, 0, 100];
const OTHER4: [u8; 4] = [10, 99, 0, 2];
const CLIENT6: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const VIP6: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];

fn timeouts() -> FlowTimeouts {
    FlowTimeouts {
        tcp_ms: 900_000,
        tcp_fin_ms: 30_000,
        udp_ms: 30_000,
    }
}

fn backend(i: usize, service: u32, state: BackendState) -> Backend {
    Backend {
        addr: IpAddr::from([10, 99, 0, 11 + i as u8]),
        mac: Some(RS[i]),
        state,
        service,
    }
}

/// Three services: TCP VIP4:80 (slots all backend 0), UDP VIP4:53 (backend 1), TCP
/// [VIP6]:80 (backend 2). Backends 3..5 are the IPv6 ones; keep it simple: ids 0,1,2.
fn snapshot(
    generation: u64,
    tcp_table: Vec<u32>,
    states: [BackendState; 3],
    sorry: Option<u32>,
    on_down: OnDown,
) -> Snapshot {
    let services = vec![
        Service {
            name: "web".into(),
            vip: IpAddr::from(VIP4),
            proto: PROTO_TCP,
            ports: vec![80],
            maglev: tcp_table,
            sorry,
            on_down,
        },
        Service {
            name: "dns".into(),
            vip: IpAddr::from(VIP4),
            proto: PROTO_UDP,
            ports: vec![53],
            maglev: vec![1; 7],
            sorry: None,
            on_down: OnDown::Reschedule,
        },
        Service {
            name: "web6".into(),
            vip: IpAddr::from(VIP6),
            proto: PROTO_TCP,
            ports: vec![80],
            maglev: vec![2; 7],
            sorry: None,
            on_down: OnDown::Reschedule,
        },
    ];
    let backends = vec![
        backend(0, 0, states[0]),
        backend(1, 1, states[1]),
        backend(2, 2, states[2]),
    ];
    Snapshot::new(generation, DIRECTOR_MAC, services, backends)
}

fn base() -> Snapshot {
    snapshot(
        1,
        vec![0; 7],
        [BackendState::Up; 3],
        None,
        OnDown::Reschedule,
    )
}

fn tcp4(dst: [u8; 4], sport: u16, dport: u16, flags: &str) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT4, dst, 64)
        .tcp(sport, dport, 1000, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'F' => b.fin(),
            'R' => b.rst(),
            'A' => b.ack(0),
            _ => b,
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, b"hello").unwrap();
    out
}

fn udp4(dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT4, dst, 64)
        .udp(sport, dport)
        .write(&mut out, b"query")
        .unwrap();
    out
}

fn tcp6(dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv6(CLIENT6, dst, 64)
        .tcp(sport, dport, 1, 65535)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    out
}

fn vlan_tcp4() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .single_vlan(etherparse::VlanId::try_new(7).unwrap())
        .ipv4(CLIENT4, VIP4, 64)
        .tcp(40000, 80, 1, 65535)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    out
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT4);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&VIP4);
    f
}

/// IPv4 with one 4-byte option (NOP x4): IHL 6.
fn with_ip_options(frame: &[u8]) -> Vec<u8> {
    let mut f = frame[..14 + 20].to_vec();
    f.extend_from_slice(&[1, 1, 1, 1]);
    f.extend_from_slice(&frame[14 + 20..]);
    f[14] = 0x46;
    let total = u16::from_be_bytes([f[16], f[17]]) + 4;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f
}

fn set_ip(frame: &[u8], byte: usize, value: u8) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[14 + byte] = value;
    f
}

/// Marks an IPv4 frame as a fragment: more-fragments flag and an offset in 8-byte units.
fn fragment(frame: &[u8], offset_units: u16, more: bool) -> Vec<u8> {
    let mut f = frame.to_vec();
    let v = offset_units | if more { 0x2000 } else { 0 };
    f[14 + 6..14 + 8].copy_from_slice(&v.to_be_bytes());
    if offset_units > 0 {
        // A non-first fragment carries no L4 header: replace it by payload bytes.
        for b in &mut f[14 + 20..] {
            *b = 0xab;
        }
    }
    f
}

fn rewritten(frame: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&mac);
    f[6..12].copy_from_slice(&DIRECTOR_MAC);
    f
}

struct Case {
    what: &'static str,
    input: Vec<u8>,
    verdict: Verdict,
    /// Expected output; `None` = unchanged.
    output: Option<Vec<u8>>,
}

fn tx(backend: u32) -> Verdict {
    Verdict::Tx {
        backend,
        new_flow: true,
    }
}

fn cases() -> Vec<Case> {
    let syn = tcp4(VIP4, 40000, 80, "S");
    let mut truncated_tcp = syn[..14 + 20 + 10].to_vec();
    truncated_tcp[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes());
    let mut lying_long = syn.clone();
    lying_long[14 + 2..14 + 4].copy_from_slice(&1500u16.to_be_bytes());
    let mut lying_short = syn.clone();
    lying_short[14 + 2..14 + 4].copy_from_slice(&10u16.to_be_bytes());
    let mut bad_doff = syn.clone();
    bad_doff[14 + 20 + 12] = 0x30;
    let mut udp_bad_len = udp4(VIP4, 5000, 53);
    udp_bad_len[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&4u16.to_be_bytes());
    let v6 = tcp6(VIP6, 40000, 80);
    let mut v6_lying = v6.clone();
    v6_lying[14 + 4..14 + 6].copy_from_slice(&9000u16.to_be_bytes());
    let opts = with_ip_options(&syn);
    let vlan = vlan_tcp4();
    let mut vlan_out = rewritten(&vlan, RS[0]);
    vlan_out[12..16].copy_from_slice(&vlan[12..16]);
    vec![
        Case {
            what: "TCP SYN to VIP:80 goes to the real server's MAC",
            output: Some(rewritten(&syn, RS[0])),
            input: syn.clone(),
            verdict: tx(0),
        },
        Case {
            what: "UDP to VIP:53",
            input: udp4(VIP4, 5000, 53),
            verdict: tx(1),
            output: Some(rewritten(&udp4(VIP4, 5000, 53), RS[1])),
        },
        Case {
            what: "TCP to [VIP6]:80",
            input: v6.clone(),
            verdict: tx(2),
            output: Some(rewritten(&v6, RS[2])),
        },
        Case {
            what: "IPv4 options are forwarded untouched",
            output: Some(rewritten(&opts, RS[0])),
            input: opts,
            verdict: tx(0),
        },
        Case {
            what: "802.1Q tag kept, MACs rewritten",
            input: vlan,
            verdict: tx(0),
            output: Some(vlan_out),
        },
        Case {
            what: "VIP on a port without service: kernel",
            input: tcp4(VIP4, 40000, 22, "S"),
            verdict: Verdict::Pass,
            output: None,
        },
        Case {
            what: "UDP to the TCP service port: kernel",
            input: udp4(VIP4, 5000, 80),
            verdict: Verdict::Pass,
            output: None,
        },
        Case {
            what: "director's own address: kernel",
            input: tcp4(OTHER4, 40000, 80, "S"),
            verdict: Verdict::Pass,
            output: None,
        },
        Case {
            what: "ARP: kernel",
            input: arp_request(),
            verdict: Verdict::Pass,
            output: None,
        },
        Case {
            what: "runt Ethernet frame: kernel",
            input: vec![0xff; 10],
            verdict: Verdict::Pass,
            output: None,
        },
        Case {
            what: "IPv4 header cut before the destination: kernel",
            input: syn[..14 + 12].to_vec(),
            verdict: Verdict::Pass,
            output: None,
        },
        Case {
            what: "IHL 3",
            input: set_ip(&syn, 0, 0x43),
            verdict: Verdict::Drop(DropReason::BadHeader),
            output: None,
        },
        Case {
            what: "IHL 15 beyond the frame",
            input: set_ip(&syn[..14 + 24], 0, 0x4f),
            verdict: Verdict::Drop(DropReason::Truncated),
            output: None,
        },
        Case {
            what: "IP version 6 in an IPv4 ethertype",
            input: set_ip(&syn, 0, 0x65),
            verdict: Verdict::Drop(DropReason::BadVersion),
            output: None,
        },
        Case {
            what: "total length beyond the frame",
            input: lying_long,
            verdict: Verdict::Drop(DropReason::BadLength),
            output: None,
        },
        Case {
            what: "total length below the header",
            input: lying_short,
            verdict: Verdict::Drop(DropReason::BadLength),
            output: None,
        },
        Case {
            what: "TCP header cut short",
            input: truncated_tcp,
            verdict: Verdict::Drop(DropReason::BadL4),
            output: None,
        },
        Case {
            what: "TCP data offset 3",
            input: bad_doff,
            verdict: Verdict::Drop(DropReason::BadL4),
            output: None,
        },
        Case {
            what: "UDP length 4",
            input: udp_bad_len,
            verdict: Verdict::Drop(DropReason::BadL4),
            output: None,
        },
        Case {
            what: "IPv6 payload length beyond the frame",
            input: v6_lying,
            verdict: Verdict::Drop(DropReason::BadLength),
            output: None,
        },
        Case {
            what: "IPv6 to another address: kernel",
            input: tcp6(CLIENT6, 1, 80),
            verdict: Verdict::Pass,
            output: None,
        },
    ]
}

#[test]
fn fixture_table() {
    let snap = base();
    for case in cases() {
        let mut flows = FlowTable::new(1024, timeouts());
        let mut frame = case.input.clone();
        let verdict = forward(&mut frame, &snap, &mut flows, 1);
        assert_eq!(verdict, case.verdict, "{}", case.what);
        let expected = case.output.unwrap_or(case.input);
        assert_eq!(frame, expected, "{}: output frame", case.what);
    }
}

#[test]
fn a_flow_stays_on_its_server_when_the_table_changes() {
    let mut flows = FlowTable::new(1024, timeouts());
    let first = base();
    let mut f = tcp4(VIP4, 40001, 80, "S");
    assert_eq!(forward(&mut f, &first, &mut flows, 1), tx(0));
    // Backend 0 drained (weight 0): the table now points at backend 1 for new flows.
    let mut states = [BackendState::Up; 3];
    states[0] = BackendState::Drain;
    let second = snapshot(2, vec![1; 7], states, None, OnDown::Reschedule);
    let mut f = tcp4(VIP4, 40001, 80, "A");
    assert_eq!(
        forward(&mut f, &second, &mut flows, 2),
        Verdict::Tx {
            backend: 0,
            new_flow: false
        }
    );
    assert_eq!(&f[0..6], &RS[0]);
    let mut g = tcp4(VIP4, 40002, 80, "S");
    assert_eq!(forward(&mut g, &second, &mut flows, 2), tx(1));
}

#[test]
fn a_flow_on_a_failed_server_is_rescheduled_or_dropped() {
    let mut flows = FlowTable::new(1024, timeouts());
    let mut f = tcp4(VIP4, 40003, 80, "S");
    assert_eq!(forward(&mut f, &base(), &mut flows, 1), tx(0));
    let mut states = [BackendState::Up; 3];
    states[0] = BackendState::Down;
    let resched = snapshot(2, vec![1; 7], states, None, OnDown::Reschedule);
    let mut f = tcp4(VIP4, 40003, 80, "A");
    assert_eq!(
        forward(&mut f, &resched, &mut flows, 2),
        Verdict::Tx {
            backend: 1,
            new_flow: false
        }
    );
    // And it stays on its new server.
    let mut f = tcp4(VIP4, 40003, 80, "A");
    assert_eq!(
        forward(&mut f, &resched, &mut flows, 3),
        Verdict::Tx {
            backend: 1,
            new_flow: false
        }
    );

    let mut flows = FlowTable::new(1024, timeouts());
    let mut f = tcp4(VIP4, 40004, 80, "S");
    assert_eq!(forward(&mut f, &base(), &mut flows, 1), tx(0));
    let drop = snapshot(2, vec![1; 7], states, None, OnDown::Drop);
    let mut f = tcp4(VIP4, 40004, 80, "A");
    assert_eq!(
        forward(&mut f, &drop, &mut flows, 2),
        Verdict::Drop(DropReason::BackendDown)
    );
}

#[test]
fn no_server_up_uses_the_sorry_server_or_drops() {
    let states = [BackendState::Down, BackendState::Up, BackendState::Up];
    let empty = snapshot(1, vec![NO_BACKEND; 7], states, None, OnDown::Reschedule);
    let mut flows = FlowTable::new(1024, timeouts());
    let mut f = tcp4(VIP4, 40005, 80, "S");
    assert_eq!(
        forward(&mut f, &empty, &mut flows, 1),
        Verdict::Drop(DropReason::NoBackend)
    );
    let sorry = snapshot(1, vec![NO_BACKEND; 7], states, Some(1), OnDown::Reschedule);
    let mut f = tcp4(VIP4, 40005, 80, "S");
    assert_eq!(forward(&mut f, &sorry, &mut flows, 1), tx(1));
    assert_eq!(&f[0..6], &RS[1]);
}

#[test]
fn a_server_without_a_mac_takes_no_traffic() {
    let mut snap = base();
    let mut backends = snap.backends.clone();
    backends[0].mac = None;
    snap = Snapshot::new(1, DIRECTOR_MAC, snap.services.clone(), backends);
    let mut flows = FlowTable::new(1024, timeouts());
    let mut f = tcp4(VIP4, 40006, 80, "S");
    assert_eq!(
        forward(&mut f, &snap, &mut flows, 1),
        Verdict::Drop(DropReason::NoMac)
    );
}

#[test]
fn every_fragment_of_a_datagram_reaches_the_same_server() {
    // A table spread over three servers so the 3-tuple choice is meaningful.
    let table: Vec<u32> = (0..7).map(|i| [0u32, 1, 2][i % 3]).collect();
    let snap = snapshot(1, table, [BackendState::Up; 3], None, OnDown::Reschedule);
    let mut flows = FlowTable::new(1024, timeouts());
    for sport in [1000u16, 2000, 3000, 4000, 5000] {
        let whole = tcp4(VIP4, sport, 80, "A");
        let mut first = fragment(&whole, 0, true);
        let mut middle = fragment(&whole, 8, true);
        let mut last = fragment(&whole, 16, false);
        let a = forward(&mut first, &snap, &mut flows, 1);
        let b = forward(&mut middle, &snap, &mut flows, 1);
        let c = forward(&mut last, &snap, &mut flows, 1);
        assert!(matches!(a, Verdict::Tx { .. }), "{a:?}");
        assert_eq!(a, b);
        assert_eq!(b, c);
    }
    assert!(flows.is_empty(), "fragments bypass the flow table");
}

#[test]
fn fin_and_rst_keep_forwarding_to_the_same_server() {
    let mut flows = FlowTable::new(1024, timeouts());
    let mut f = tcp4(VIP4, 40007, 80, "S");
    assert_eq!(forward(&mut f, &base(), &mut flows, 1), tx(0));
    let mut f = tcp4(VIP4, 40007, 80, "FA");
    assert_eq!(
        forward(&mut f, &base(), &mut flows, 2),
        Verdict::Tx {
            backend: 0,
            new_flow: false
        }
    );
    let mut f = tcp4(VIP4, 40007, 80, "A");
    assert_eq!(
        forward(&mut f, &base(), &mut flows, 3),
        Verdict::Tx {
            backend: 0,
            new_flow: false
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let snap = base();
        let mut flows = FlowTable::new(64, timeouts());
        let _ = forward(&mut bytes, &snap, &mut flows, 1);
    }

    #[test]
    fn mutated_vip_frames_never_panic(idx in 0usize..80, val in any::<u8>(), cut in 0usize..80) {
        let snap = base();
        let mut flows = FlowTable::new(64, timeouts());
        for proto in 0..3 {
            let mut f = match proto { 0 => tcp4(VIP4, 1234, 80, "S"), 1 => udp4(VIP4, 1234, 53), _ => tcp6(VIP6, 1234, 80) };
            if idx < f.len() { f[idx] = val; }
            let keep = f.len().saturating_sub(cut);
            f.truncate(keep);
            let _ = forward(&mut f, &snap, &mut flows, 1);
        }
    }
}
