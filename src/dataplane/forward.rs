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
use crate::lb::hash::hash_flow_parts;
use crate::lb::tables::{BackendId, OnDown, Snapshot, PROTO_TCP, PROTO_UDP};
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
#[inline]
pub fn forward(frame: &mut [u8], snap: &Snapshot, flows: &mut FlowTable, now_ms: u64) -> Verdict {
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

    let mac = match snap.backend(backend).and_then(|b| b.mac) {
        Some(mac) => mac,
        None => return Verdict::Drop(DropReason::NoMac),
    };
    // The Ethernet header was validated above, so the MAC fields are in bounds.
    frame[0..6].copy_from_slice(&mac);
    frame[6..12].copy_from_slice(&snap.local_mac);
    Verdict::Tx { backend, new_flow }
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
    let svc = &snap.services[svc_idx as usize];
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

    if let Some(entry) = flows.lookup(&key, hash, now_ms) {
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
        return Ok(Some((backend, false)));
    }

    let backend = svc.pick(hash).ok_or(DropReason::NoBackend)?;
    let entry = flows.insert(&key, hash, backend, now_ms);
    if closing {
        entry.close(now_ms);
    }
    Ok(Some((backend, true)))
}
