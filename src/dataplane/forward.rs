//! The pure forwarding decision: frame bytes + snapshot + flow table -> verdict.
//!
//! `forward` is a pure function of its inputs (plus the flow table it updates), so it is
//! tested with fixture frames and no NIC. Guarantees:
//! - it never panics and never allocates, whatever the bytes;
//! - for a configured VIP:port/protocol it keeps a flow on its real server while that
//!   server is usable (up or draining), and picks by Maglev otherwise (new flow, or the
//!   flow's server went down and the service reschedules);
//! - the IP packet is never modified (direct routing): only the destination MAC (the real
//!   server's) and the source MAC (the director's) are rewritten;
//! - IP fragments are steered by the 3-tuple (src, dst, protocol), as Maglev §4.3 does, so
//!   every fragment of a datagram reaches the same real server; they bypass the flow table;
//! - frames not for a VIP get `Pass`; malformed frames for a VIP get `Drop` with a reason.

use crate::lb::flow::{FlowKey, FlowTable};
use crate::lb::hash::{hash_flow_parts, hash_flow_v4};
use crate::lb::tables::{v4_key, BackendId, OnDown, Snapshot, PROTO_TCP, PROTO_UDP};
use crate::wire::{ethernet, ipv4, ipv6};

/// Why a frame was dropped. `as_str` gives the Prometheus label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum DropReason {
    /// Shorter than the headers it claims to carry.
    Truncated = 0,
    /// IP version field does not match the ethertype.
    BadVersion,
    /// IPv4 IHL below 5, or an IPv6 extension header chain that is malformed or too long.
    BadHeader,
    /// IP length fields that lie (total length beyond the frame or below the header).
    BadLength,
    /// TCP/UDP header missing or malformed in a first (or only) fragment.
    BadL4,
    /// The service has no usable real server and no sorry server.
    NoBackend,
    /// The flow's real server went down and the service's `on_down` is `drop`.
    BackendDown,
    /// The picked real server has no MAC address (yet).
    NoMac,
}

impl DropReason {
    /// Number of reasons (array size for per-reason counters).
    pub const COUNT: usize = 8;
    /// Every reason, in discriminant order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Truncated,
        DropReason::BadVersion,
        DropReason::BadHeader,
        DropReason::BadLength,
        DropReason::BadL4,
        DropReason::NoBackend,
        DropReason::BackendDown,
        DropReason::NoMac,
    ];

    /// Metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadVersion => "bad_version",
            DropReason::BadHeader => "bad_header",
            DropReason::BadLength => "bad_length",
            DropReason::BadL4 => "bad_l4",
            DropReason::NoBackend => "no_backend",
            DropReason::BackendDown => "backend_down",
            DropReason::NoMac => "no_mac",
        }
    }
}

/// What to do with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The frame was rewritten in place; transmit it. `new_flow` is true when this frame
    /// created a flow-table entry (or was a fragment picked without one).
    Tx { backend: BackendId, new_flow: bool },
    /// Not for a virtual service: the kernel's business.
    Pass,
    /// Drop, counted by reason.
    Drop(DropReason),
}

/// Where the L3 header starts and what it says, after validation.
struct L3 {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    /// Offset of the L4 header from the start of the frame.
    l4: usize,
    /// Bytes of L4 header + payload available (bounded by the IP length fields).
    l4_len: usize,
    /// `Some(first)` when the packet is a fragment; `first` = offset 0.
    fragment: Option<bool>,
}

const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// Decides what happens to one frame and rewrites it in place when it is forwarded.
///
/// Untagged IPv4 TCP/UDP without IP options, unfragmented, to a VIP, with a valid L4
/// header (the common case) takes a fast path that reads the fixed header offsets
/// directly and hashes the 4-byte addresses ([`hash_flow_v4`], bit-identical to the
/// 16-byte key's hash); every other frame, and every frame the fast path is not sure
/// about, goes through the general parser. Both give the same verdict (tested).
#[inline]
pub fn forward(frame: &mut [u8], snap: &Snapshot, flows: &mut FlowTable, now_ms: u64) -> Verdict {
    match parse_v4_fast(frame, snap) {
        Some(p) => finish_v4_fast(frame, &p, snap, flows, now_ms),
        None => forward_general(frame, snap, flows, now_ms),
    }
}

/// What the IPv4 fast path learned from a frame's headers.
#[derive(Clone, Copy)]
struct FastV4 {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    proto: u8,
    closing: bool,
    service: u32,
    hash: u64,
}

/// Ethernet (14) + IPv4 without options (20) + the first 8 bytes of TCP or UDP.
const FAST_MIN: usize = 14 + 20 + 8;

/// The IPv4 fast path's parse: `Some` only for an untagged IPv4 frame without options,
/// not a fragment, whose IPv4 and TCP/UDP headers pass every check of the general path,
/// sent to a VIP:port that has a service. In every other case `None`, and the general
/// path decides (and gives `Pass` or `Drop` as before).
#[inline(always)]
fn parse_v4_fast(frame: &[u8], snap: &Snapshot) -> Option<FastV4> {
    let h: &[u8; FAST_MIN] = frame.get(..FAST_MIN)?.try_into().ok()?;
    // Ethertype IPv4 (untagged), version 4, IHL 5.
    if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 {
        return None;
    }
    let dst = [h[30], h[31], h[32], h[33]];
    if !snap.is_vip_v4(dst) {
        return None;
    }
    // Total length within the frame and at least the header; no MF flag, offset 0.
    let total = usize::from(u16::from_be_bytes([h[16], h[17]]));
    if total < 20 || total > frame.len() - 14 || h[20] & 0x3f != 0 || h[21] != 0 {
        return None;
    }
    let l4_len = total - 20;
    let proto = h[23];
    let closing = match proto {
        PROTO_TCP => {
            // Flags and data offset live at L4 bytes 12 and 13.
            let l4 = frame.get(34..54)?;
            let data_off = usize::from(l4[12] >> 4) * 4;
            if l4_len < 20 || data_off < 20 || data_off > l4_len {
                return None;
            }
            l4[13] & (TCP_FIN | TCP_RST) != 0
        }
        PROTO_UDP => {
            if l4_len < 8 || u16::from_be_bytes([h[38], h[39]]) < 8 {
                return None;
            }
            false
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([h[34], h[35]]);
    let dport = u16::from_be_bytes([h[36], h[37]]);
    let service = snap.service_for_v4(dst, proto, dport)?;
    let src = [h[26], h[27], h[28], h[29]];
    Some(FastV4 {
        src,
        dst,
        sport,
        dport,
        proto,
        closing,
        service,
        hash: hash_flow_v4(src, dst, sport, dport, proto),
    })
}

/// The rest of [`forward`] for a frame [`parse_v4_fast`] accepted.
#[inline(always)]
fn finish_v4_fast(
    frame: &mut [u8],
    p: &FastV4,
    snap: &Snapshot,
    flows: &mut FlowTable,
    now_ms: u64,
) -> Verdict {
    let key = FlowKey {
        src: v4_key(p.src),
        dst: v4_key(p.dst),
        sport: p.sport,
        dport: p.dport,
        proto: p.proto,
    };
    match pick_keyed(&key, p.hash, p.closing, p.service, snap, flows, now_ms) {
        Ok((backend, new_flow)) => rewrite(frame, snap, backend, new_flow),
        Err(r) => Verdict::Drop(r),
    }
}

/// Rewrites the MACs for `backend` (validated Ethernet header: `frame.len() >= 14`).
#[inline(always)]
fn rewrite(frame: &mut [u8], snap: &Snapshot, backend: BackendId, new_flow: bool) -> Verdict {
    let mac = match snap.backend(backend).and_then(|b| b.mac) {
        Some(mac) => mac,
        None => return Verdict::Drop(DropReason::NoMac),
    };
    if let Some(h) = frame.get_mut(..12) {
        h[0..6].copy_from_slice(&mac);
        h[6..12].copy_from_slice(&snap.local_mac);
    }
    Verdict::Tx { backend, new_flow }
}

/// [`forward`] by the general parser only (every frame; the reference for the fast path).
#[inline]
fn forward_general(
    frame: &mut [u8],
    snap: &Snapshot,
    flows: &mut FlowTable,
    now_ms: u64,
) -> Verdict {
    let (l2_len, ethertype) = match ethernet::Frame::new_checked(&frame[..]) {
        Ok(eth) => (eth.header_len(), eth.ethertype()),
        Err(_) => return Verdict::Pass, // not even an Ethernet header: not ours to judge
    };
    let l3 = match ethertype {
        ethernet::ETHERTYPE_IPV4 => parse_v4(&frame[l2_len..], l2_len, snap),
        ethernet::ETHERTYPE_IPV6 => parse_v6(&frame[l2_len..], l2_len, snap),
        _ => return Verdict::Pass,
    };
    let l3 = match l3 {
        Ok(Some(l3)) => l3,
        Ok(None) => return Verdict::Pass,
        Err(reason) => return Verdict::Drop(reason),
    };

    let (backend, new_flow) = match l3.fragment {
        Some(first) => match pick_fragment(&l3, first, snap) {
            Ok(Some(b)) => (b, true),
            Ok(None) => return Verdict::Pass,
            Err(r) => return Verdict::Drop(r),
        },
        None => match pick_flow(frame, &l3, snap, flows, now_ms) {
            Ok(Some(v)) => v,
            Ok(None) => return Verdict::Pass,
            Err(r) => return Verdict::Drop(r),
        },
    };

    // The Ethernet header was validated above, so the MAC fields are in bounds.
    rewrite(frame, snap, backend, new_flow)
}

/// Reads the destination of a (possibly malformed) IPv4 header, if the bytes are there.
#[inline]
fn v4_dst(ip: &[u8]) -> Option<[u8; 16]> {
    let d = ip.get(16..20)?;
    Some(
        std::net::Ipv4Addr::new(d[0], d[1], d[2], d[3])
            .to_ipv6_mapped()
            .octets(),
    )
}

#[inline]
fn parse_v4(ip: &[u8], l2_len: usize, snap: &Snapshot) -> Result<Option<L3>, DropReason> {
    let pkt = match ipv4::Packet::new_checked(ip) {
        Ok(p) => p,
        Err(_) => {
            // Only a frame addressed to a VIP is ours to drop and count.
            return match v4_dst(ip) {
                Some(dst) if snap.is_vip(&dst) => Err(classify_v4(ip)),
                _ => Ok(None),
            };
        }
    };
    let dst = std::net::Ipv4Addr::from(pkt.dst_addr())
        .to_ipv6_mapped()
        .octets();
    if !snap.is_vip(&dst) {
        return Ok(None);
    }
    let src = std::net::Ipv4Addr::from(pkt.src_addr())
        .to_ipv6_mapped()
        .octets();
    let hl = pkt.header_len();
    let fragment = pkt.is_fragment().then(|| pkt.frag_offset() == 0);
    Ok(Some(L3 {
        src,
        dst,
        proto: pkt.protocol(),
        l4: l2_len + hl,
        l4_len: pkt.total_len() as usize - hl,
        fragment,
    }))
}

/// Names what is wrong with an IPv4 header that failed validation (cold path).
#[cold]
fn classify_v4(ip: &[u8]) -> DropReason {
    if ip.len() < 20 {
        return DropReason::Truncated;
    }
    if ip[0] >> 4 != 4 {
        return DropReason::BadVersion;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    if hl < 20 {
        return DropReason::BadHeader;
    }
    if hl > ip.len() {
        return DropReason::Truncated;
    }
    DropReason::BadLength
}

fn parse_v6(ip: &[u8], l2_len: usize, snap: &Snapshot) -> Result<Option<L3>, DropReason> {
    let pkt = match ipv6::Packet::new_checked(ip) {
        Ok(p) => p,
        Err(_) => {
            let dst: Option<[u8; 16]> = ip.get(24..40).and_then(|d| d.try_into().ok());
            return match dst {
                Some(dst) if snap.is_vip(&dst) => Err(if ip.len() < 40 {
                    DropReason::Truncated
                } else if ip[0] >> 4 != 6 {
                    DropReason::BadVersion
                } else {
                    DropReason::BadLength
                }),
                _ => Ok(None),
            };
        }
    };
    let dst = pkt.dst_addr();
    if !snap.is_vip(&dst) {
        return Ok(None);
    }
    let ul = match pkt.upper_layer() {
        Ok(ul) => ul,
        Err(_) => return Err(DropReason::BadHeader),
    };
    let end = 40 + pkt.payload_len() as usize;
    if ul.offset > end {
        return Err(DropReason::BadHeader);
    }
    Ok(Some(L3 {
        src: pkt.src_addr(),
        dst,
        proto: ul.protocol,
        l4: l2_len + ul.offset,
        l4_len: end - ul.offset,
        fragment: ul.fragment.map(|f| f.offset == 0),
    }))
}

/// Fragments: service by (vip, proto), backend by the 3-tuple hash, no flow state.
fn pick_fragment(l3: &L3, first: bool, snap: &Snapshot) -> Result<Option<BackendId>, DropReason> {
    if l3.proto != PROTO_TCP && l3.proto != PROTO_UDP {
        return Ok(None);
    }
    if first && l3.l4_len < 4 {
        // A first fragment too short to carry the ports.
        return Err(DropReason::BadL4);
    }
    let svc = match snap.fragment_service(&l3.dst, l3.proto) {
        Some(s) => &snap.services[s as usize],
        None => return Ok(None),
    };
    let key = FlowKey {
        src: l3.src,
        dst: l3.dst,
        sport: 0,
        dport: 0,
        proto: l3.proto,
    };
    svc.pick(key.hash()).map(Some).ok_or(DropReason::NoBackend)
}

/// Whole (unfragmented) TCP/UDP: flow-table hit, else Maglev pick and insert.
#[inline]
fn pick_flow(
    frame: &[u8],
    l3: &L3,
    snap: &Snapshot,
    flows: &mut FlowTable,
    now_ms: u64,
) -> Result<Option<(BackendId, bool)>, DropReason> {
    let min = match l3.proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => return Ok(None),
    };
    let l4 = match frame.get(l3.l4..l3.l4 + min) {
        Some(h) if l3.l4_len >= min => h,
        _ => return Err(DropReason::BadL4),
    };
    let sport = u16::from_be_bytes([l4[0], l4[1]]);
    let dport = u16::from_be_bytes([l4[2], l4[3]]);
    let closing = if l3.proto == PROTO_TCP {
        let data_off = usize::from(l4[12] >> 4) * 4;
        if data_off < 20 || data_off > l3.l4_len {
            return Err(DropReason::BadL4);
        }
        l4[13] & (TCP_FIN | TCP_RST) != 0
    } else {
        if usize::from(u16::from_be_bytes([l4[4], l4[5]])) < 8 {
            return Err(DropReason::BadL4);
        }
        false
    };
    let svc_idx = match snap.service_for(&l3.dst, l3.proto, dport) {
        Some(s) => s,
        None => return Ok(None),
    };
    // Hash from the parsed fields (registers), not from the key just stored to memory:
    // see `hash_flow_parts`.
    let hash = hash_flow_parts(&l3.src, &l3.dst, sport, dport, l3.proto);
    let key = FlowKey {
        src: l3.src,
        dst: l3.dst,
        sport,
        dport,
        proto: l3.proto,
    };
    pick_keyed(&key, hash, closing, svc_idx, snap, flows, now_ms).map(Some)
}

/// Flow-table hit (kept while its server is usable), else Maglev pick and insert; FIN/RST
/// marks the entry closing. Returns the backend and whether a flow was created.
#[inline(always)]
fn pick_keyed(
    key: &FlowKey,
    hash: u64,
    closing: bool,
    svc_idx: u32,
    snap: &Snapshot,
    flows: &mut FlowTable,
    now_ms: u64,
) -> Result<(BackendId, bool), DropReason> {
    let svc = match snap.services.get(svc_idx as usize) {
        Some(s) => s,
        None => return Err(DropReason::NoBackend), // unreachable: indexes name services
    };
    if let Some(entry) = flows.lookup(key, hash, now_ms) {
        let current = entry.backend();
        let usable = snap
            .backend(current)
            .is_some_and(|b| b.service == svc_idx && b.usable_for_existing());
        let backend = if usable {
            current
        } else if svc.on_down == OnDown::Drop {
            return Err(DropReason::BackendDown);
        } else {
            let b = svc.pick(hash).ok_or(DropReason::NoBackend)?;
            entry.set_backend(b);
            b
        };
        if closing && !entry.is_closing() {
            entry.close(now_ms);
        }
        return Ok((backend, false));
    }

    let backend = svc.pick(hash).ok_or(DropReason::NoBackend)?;
    // `lookup` just missed (and freed an expired entry for the key, if any).
    let entry = flows.insert_absent(key, hash, backend, now_ms);
    if closing {
        entry.close(now_ms);
    }
    Ok((backend, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::flow::FlowTimeouts;
    use crate::lb::tables::{Backend, BackendState, Service};
    use proptest::prelude::*;
    use std::net::IpAddr;

    const T: FlowTimeouts = FlowTimeouts {
        tcp_ms: 900_000,
        tcp_fin_ms: 30_000,
        udp_ms: 10_000,
    };
    const VIP: [u8; 4] = [192, 168, 5, 188];

    /// TCP VIP:80,443 (3 servers, one down, one without MAC after the first), UDP VIP:53
    /// (2 servers), an every-port TCP service on a second VIP, an IPv6 service.
    fn snap() -> Snapshot {
        let be = |i: u8, service: u32, state: BackendState, mac: bool| Backend {
            addr: IpAddr::from([10, 0, 0, i]),
            mac: mac.then_some([2, 0, 0, 0, 0, i]),
            state,
            service,
        };
        let svc = |vip: IpAddr, proto, ports: Vec<u16>, table: Vec<u32>, on_down| Service {
            name: String::new(),
            vip,
            proto,
            ports,
            maglev: table,
            sorry: None,
            on_down,
        };
        let backends = vec![
            be(1, 0, BackendState::Up, true),
            be(2, 0, BackendState::Down, true),
            be(3, 0, BackendState::Up, false),
            be(4, 1, BackendState::Up, true),
            be(5, 1, BackendState::Drain, true),
            be(6, 2, BackendState::Up, true),
            be(7, 3, BackendState::Up, true),
        ];
        let services = vec![
            svc(
                IpAddr::from(VIP),
                PROTO_TCP,
                vec![80, 443],
                vec![0, 1, 2, 0, 2, 1, 0],
                OnDown::Reschedule,
            ),
            svc(
                IpAddr::from(VIP),
                PROTO_UDP,
                vec![53],
                vec![3, 4, 3, 3, 4],
                OnDown::Drop,
            ),
            svc(
                IpAddr::from([192, 168, 5, 189]),
                PROTO_TCP,
                vec![],
                vec![5; 7],
                OnDown::Reschedule,
            ),
            svc(
                "2001:db8::88".parse().unwrap(),
                PROTO_TCP,
                vec![80],
                vec![6; 7],
                OnDown::Reschedule,
            ),
        ];
        Snapshot::new(1, [2, 0, 0, 0, 0, 0xdd], services, backends)
    }

    /// A valid frame of one of several kinds to start mutating from.
    fn template(kind: u8, a: u8, sport: u16, flags: u8) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + 6];
        f[12] = 0x08;
        f[14] = 0x45;
        f[16..18].copy_from_slice(&46u16.to_be_bytes());
        f[22] = 64;
        f[23] = PROTO_TCP;
        f[26..30].copy_from_slice(&[10, 9, 0, a]);
        f[30..34].copy_from_slice(&VIP);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        f[46] = 0x50;
        f[47] = flags;
        match kind % 6 {
            0 => {}
            1 => {
                // UDP to :53
                f[23] = PROTO_UDP;
                f[36..38].copy_from_slice(&53u16.to_be_bytes());
                f[38..40].copy_from_slice(&26u16.to_be_bytes());
            }
            2 => f[33] = 189, // the every-port VIP
            3 => f[36..38].copy_from_slice(&443u16.to_be_bytes()),
            4 => {
                // IPv4 options (IHL 6)
                f[14] = 0x46;
                f.splice(34..34, [1, 1, 1, 1]);
                f[16..18].copy_from_slice(&50u16.to_be_bytes());
            }
            _ => {
                // 802.1Q tag
                f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
            }
        }
        f
    }

    proptest! {
        /// The fast path and the general path give the same verdicts, the same output
        /// bytes and the same flow-table state on valid and mutated frames, over a
        /// sequence of packets that creates, hits, closes and expires flows.
        #[test]
        fn fast_path_equals_general_path(
            pkts in proptest::collection::vec(
                (any::<u8>(), 0u8..8, 0u16..6, any::<u8>(),
                 proptest::collection::vec((0usize..64, any::<u8>()), 0..3),
                 0usize..80, 0u64..40_000),
                1..120),
        ) {
            let s = snap();
            let mut a = FlowTable::new(64, T);
            let mut b = FlowTable::new(64, T);
            let mut now = 0u64;
            for (kind, host, sport, flags, muts, cut, dt) in pkts {
                now += dt;
                let mut f = template(kind, host, 1000 + sport, flags & 0x17);
                for (i, v) in muts {
                    if let Some(x) = f.get_mut(i) {
                        *x = v;
                    }
                }
                if cut < f.len() && kind & 0x80 != 0 {
                    f.truncate(cut);
                }
                let mut g = f.clone();
                let va = forward(&mut f, &s, &mut a, now);
                let vb = forward_general(&mut g, &s, &mut b, now);
                prop_assert_eq!(va, vb);
                prop_assert_eq!(&f, &g);
                prop_assert_eq!(a.len(), b.len());
                prop_assert_eq!(a.evictions(), b.evictions());
                prop_assert_eq!(a.expirations(), b.expirations());
            }
            let (mut la, mut lb) = (vec![], vec![]);
            a.for_each_live(now, |k, be| la.push((*k, be)));
            b.for_each_live(now, |k, be| lb.push((*k, be)));
            prop_assert_eq!(la, lb);
        }
    }

    /// The templates reach the fast path (so the property above compares something).
    #[test]
    fn templates_take_the_fast_path_where_expected() {
        let s = snap();
        for kind in 0..6u8 {
            let f = template(kind, 1, 1000, 0x10);
            assert_eq!(parse_v4_fast(&f, &s).is_some(), kind < 4, "kind {kind}");
            let mut t = FlowTable::new(64, T);
            let v = forward(&mut f.clone(), &s, &mut t, 1);
            assert!(
                matches!(v, Verdict::Tx { .. } | Verdict::Drop(_)),
                "{kind}: {v:?}"
            );
        }
    }
}
