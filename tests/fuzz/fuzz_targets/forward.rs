//! Fuzz target: arbitrary bytes as a frame into `forward()`, with a fixed snapshot (IPv4
//! and IPv6 VIPs, TCP and UDP services, an every-port service, a service with no real
//! server up, a draining server) and a small flow table.
//!
//! The first input byte picks the mode: even = the rest of the input is the frame as it
//! is; odd = a valid template frame (TCP/UDP over IPv4/IPv6, VLAN, IP options, IPv6
//! extension headers, fragments; chosen by the second byte) mutated by the rest of the
//! input (pairs of offset/xor-value, plus a truncation length), so the fuzzer reaches the
//! deep paths of a frame that is almost right.
//!
//! Beyond "no panic", it checks what `forward` promises: a `Tx` frame differs from the
//! input only in its two MAC addresses (destination = the picked real server's MAC, source
//! = the director's), a `Pass`/`Drop` frame is unchanged, and the same frame forwarded
//! again (now a flow-table hit) goes to the same real server.
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use xlb::dataplane::forward::{forward, Verdict};
use xlb::lb::flow::{FlowTable, FlowTimeouts};
use xlb::lb::maglev;
use xlb::lb::tables::{
    Backend, BackendState, OnDown, Service, Snapshot, NO_BACKEND, PROTO_TCP, PROTO_UDP,
};

const DIRECTOR_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0x99, 0, 0, 0, 0x10];
const VIP4: [u8; 4] = [10, 99, 0, 100];
const CLIENT4: [u8; 4] = [10, 99, 0, 10];
const VIP6: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
const CLIENT6: [u8; 16] = [0xfd, 0x99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
const M: usize = 251;

fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let mut backends = Vec::new();
        let mut services = Vec::new();
        // (vip, proto, ports, number of real servers; the last one drains)
        let specs: [(IpAddr, u8, Vec<u16>, u32); 5] = [
            (IpAddr::from(VIP4), PROTO_TCP, vec![80, 443], 3),
            (IpAddr::from(VIP4), PROTO_UDP, vec![53], 2),
            (IpAddr::from(VIP6), PROTO_TCP, vec![80], 3),
            (IpAddr::from(VIP6), PROTO_UDP, vec![], 2),
            (IpAddr::from(VIP4), PROTO_TCP, vec![8080], 0),
        ];
        for (si, (vip, proto, ports, n)) in specs.into_iter().enumerate() {
            let mut members = Vec::new();
            let mut ids = Vec::new();
            for i in 0..n {
                let id = backends.len() as u32;
                let addr = match vip {
                    IpAddr::V4(_) => IpAddr::from([10, 99, si as u8, 11 + i as u8]),
                    IpAddr::V6(_) => {
                        let mut a = VIP6;
                        a[14] = si as u8;
                        a[15] = 11 + i as u8;
                        IpAddr::from(a)
                    }
                };
                let drain = n > 2 && i == n - 1;
                backends.push(Backend {
                    addr,
                    mac: Some([0x02, 0x98, 0, 0, si as u8, i as u8]),
                    state: if drain {
                        BackendState::Drain
                    } else {
                        BackendState::Up
                    },
                    service: si as u32,
                });
                if !drain {
                    members.push((addr, 1));
                    ids.push(id);
                }
            }
            let table = maglev::build(&members, M)
                .expect("prime")
                .into_iter()
                .map(|i| {
                    if i == NO_BACKEND {
                        NO_BACKEND
                    } else {
                        ids[i as usize]
                    }
                })
                .collect();
            services.push(Service {
                name: format!("svc{si}"),
                vip,
                proto,
                ports,
                maglev: table,
                sorry: None,
                on_down: OnDown::Reschedule,
            });
        }
        Snapshot::new(1, DIRECTOR_MAC, services, backends)
    })
}

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = DIRECTOR_MAC.to_vec();
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn l4(proto: u8, dport: u16) -> Vec<u8> {
    let mut h = vec![0x9c, 0x40];
    h.extend_from_slice(&dport.to_be_bytes());
    if proto == PROTO_TCP {
        h.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    } else {
        h.extend_from_slice(&[0, 13, 0, 0]);
    }
    h.extend_from_slice(b"hello");
    h
}

/// IPv4 header (+ `opts`, a multiple of 4 bytes) and payload; `frag` is the flags/offset.
fn ipv4(proto: u8, opts: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
    let hl = 20 + opts.len();
    let total = (hl + payload.len()) as u16;
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&CLIENT4);
    h.extend_from_slice(&VIP4);
    h.extend_from_slice(opts);
    h.extend_from_slice(payload);
    h
}

/// IPv6 header with optional extension headers `(type, body of 6 bytes)` before `proto`.
fn ipv6(proto: u8, exts: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    let mut first = proto;
    for &t in exts.iter().rev() {
        let mut e = vec![first, 0];
        if t == 44 {
            // Fragment header: offset 0, more fragments.
            e.extend_from_slice(&[0, 1, 0, 0, 0, 7]);
        } else {
            e.extend_from_slice(&[1, 4, 0, 0, 0, 0]);
        }
        e.extend_from_slice(&chain);
        chain = e;
        first = t;
    }
    chain.extend_from_slice(payload);
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(chain.len() as u16).to_be_bytes());
    h.extend_from_slice(&[first, 64]);
    h.extend_from_slice(&CLIENT6);
    h.extend_from_slice(&VIP6);
    h.extend_from_slice(&chain);
    h
}

fn template(which: u8) -> Vec<u8> {
    let mut f;
    match which % 10 {
        0 => {
            f = eth(0x0800);
            f.extend(ipv4(PROTO_TCP, &[], 0, &l4(PROTO_TCP, 80)));
        }
        1 => {
            f = eth(0x0800);
            f.extend(ipv4(PROTO_UDP, &[], 0, &l4(PROTO_UDP, 53)));
        }
        2 => {
            f = eth(0x86dd);
            f.extend(ipv6(PROTO_TCP, &[], &l4(PROTO_TCP, 80)));
        }
        3 => {
            f = eth(0x86dd);
            f.extend(ipv6(PROTO_UDP, &[], &l4(PROTO_UDP, 5353)));
        }
        4 => {
            f = eth(0x8100);
            f.extend_from_slice(&[0, 7, 0x08, 0x00]);
            f.extend(ipv4(PROTO_TCP, &[], 0, &l4(PROTO_TCP, 443)));
        }
        5 => {
            f = eth(0x0800);
            f.extend(ipv4(PROTO_TCP, &[1, 1, 1, 0], 0, &l4(PROTO_TCP, 80)));
        }
        6 => {
            // First fragment (MF set) and a later fragment.
            f = eth(0x0800);
            f.extend(ipv4(PROTO_UDP, &[], 0x2000, &l4(PROTO_UDP, 53)));
        }
        7 => {
            f = eth(0x0800);
            f.extend(ipv4(PROTO_UDP, &[], 0x0003, &[0xab; 24]));
        }
        8 => {
            f = eth(0x86dd);
            f.extend(ipv6(PROTO_TCP, &[0, 60, 44], &l4(PROTO_TCP, 80)));
        }
        _ => {
            f = eth(0x0800);
            f.extend(ipv4(PROTO_TCP, &[], 0, &l4(PROTO_TCP, 8080)));
        }
    }
    f
}

fn timeouts() -> FlowTimeouts {
    FlowTimeouts {
        tcp_ms: 900_000,
        tcp_fin_ms: 30_000,
        udp_ms: 30_000,
    }
}

fn check(input: &[u8]) {
    let snap = snapshot();
    let mut flows = FlowTable::new(64, timeouts());
    let mut frame = input.to_vec();
    let v = forward(&mut frame, snap, &mut flows, 1_000);
    assert_eq!(frame.len(), input.len());
    match v {
        Verdict::Tx { backend, .. } => {
            let b = snap.backend(backend).expect("a Tx backend exists");
            assert_eq!(&frame[0..6], &b.mac.expect("a Tx backend has a MAC"));
            assert_eq!(&frame[6..12], &DIRECTOR_MAC);
            assert_eq!(
                &frame[12..],
                &input[12..],
                "the IP packet must stay untouched"
            );
            assert_ne!(b.state, BackendState::Down);
            // Forwarded again: the same real server (a flow-table hit, or the same
            // 3-tuple pick for a fragment).
            let mut again = input.to_vec();
            let v2 = forward(&mut again, snap, &mut flows, 1_001);
            match v2 {
                Verdict::Tx { backend: b2, .. } => assert_eq!(b2, backend),
                other => panic!("first {v:?}, then {other:?}"),
            }
            assert_eq!(again, frame);
        }
        Verdict::Pass | Verdict::Drop(_) => {
            assert_eq!(frame, input, "a frame not sent must stay unchanged");
            let mut again = input.to_vec();
            assert_eq!(forward(&mut again, snap, &mut flows, 1_001), v);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check(rest);
        return;
    }
    let Some((&which, ops)) = rest.split_first() else {
        return;
    };
    let mut frame = template(which);
    let mut chunks = ops.chunks_exact(2);
    for op in &mut chunks {
        let at = op[0] as usize % frame.len();
        frame[at] ^= op[1];
    }
    if let [cut] = chunks.remainder() {
        let keep = *cut as usize;
        if keep < frame.len() {
            frame.truncate(keep);
        }
    }
    check(&frame);
});
