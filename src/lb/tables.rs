//! Immutable snapshots that the control plane builds and publishes to the workers.
//!
//! A [`Snapshot`] holds everything a worker needs to forward a frame: the services (VIP,
//! protocol, ports), each service's Maglev lookup table, and the backend directory. It is
//! built off the hot path and never mutated once published; workers swap to a new one
//! between batches (arc-swap), so no lock is taken per packet.
//!
//! Backend ids are stable for the life of the process: the control plane never reuses an
//! id for a different (service, address), so a flow-table entry that stores an id keeps
//! pointing at the same real server across snapshots.

use std::collections::HashMap;
use std::net::IpAddr;

/// Stable identifier of a real server within one service (index into `Snapshot::backends`).
pub type BackendId = u32;
/// "No backend" marker in Maglev tables.
pub const NO_BACKEND: BackendId = u32::MAX;

/// IP protocol numbers of the services xlb balances.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Health/administrative state of a backend as the data plane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    /// In the Maglev table (weight > 0); takes new flows and keeps existing ones.
    Up,
    /// Weight 0 (configured or inhibited): keeps existing flows, takes no new ones.
    Drain,
    /// Failed or removed: not in the table; flows pinned to it are re-picked (or dropped).
    Down,
}

/// What happens to a flow whose backend went down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnDown {
    /// Pick a new backend through Maglev (default).
    #[default]
    Reschedule,
    /// Drop the flow's packets (the client's connection then times out or is reset by
    /// the new server).
    Drop,
}

/// One real server as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The real server's address (the IP packet is not rewritten in DR mode).
    pub addr: IpAddr,
    /// Its MAC; `None` until resolved. A backend without a MAC takes no traffic.
    pub mac: Option<[u8; 6]>,
    /// Current state.
    pub state: BackendState,
    /// Index of the owning service in `Snapshot::services`.
    pub service: u32,
}

impl Backend {
    /// True when existing flows may keep using this backend.
    #[inline]
    pub fn usable_for_existing(&self) -> bool {
        self.state != BackendState::Down && self.mac.is_some()
    }
}

/// One virtual service: a VIP, a protocol and a set of ports.
#[derive(Clone, Debug)]
pub struct Service {
    /// Name from the config.
    pub name: String,
    /// Virtual IP.
    pub vip: IpAddr,
    /// `PROTO_TCP` or `PROTO_UDP`.
    pub proto: u8,
    /// Ports; empty means every port.
    pub ports: Vec<u16>,
    /// Maglev lookup table: slot -> backend id (`NO_BACKEND` when nothing is up).
    pub maglev: Vec<BackendId>,
    /// Backend used for new flows when every real server is down.
    pub sorry: Option<BackendId>,
    /// Policy for flows whose backend went down.
    pub on_down: OnDown,
}

impl Service {
    /// Picks a backend for a new flow by its hash; `None` when the table is empty.
    #[inline]
    pub fn pick(&self, hash: u64) -> Option<BackendId> {
        if self.maglev.is_empty() {
            return None;
        }
        let id = self.maglev[(hash % self.maglev.len() as u64) as usize];
        if id == NO_BACKEND {
            self.sorry
        } else {
            Some(id)
        }
    }
}

/// 16-byte address key: IPv4 as an IPv4-mapped IPv6 address.
#[inline]
pub fn addr_key(addr: &IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The 16-byte key of an IPv4 address (IPv4-mapped), as [`addr_key`] makes it.
#[inline(always)]
pub fn v4_key(a: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a[0], a[1], a[2], a[3],
    ]
}

/// Largest number of (vip, proto, port) entries looked up by a linear scan.
const LINEAR_INDEX_MAX: usize = 32;

/// One (vip, proto, port) -> service entry of the linear index.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    vip: [u8; 16],
    proto: u8,
    port: u16,
    service: u32,
}

/// One (IPv4 vip, proto, port) -> service entry of the IPv4 linear index.
#[derive(Clone, Copy, Debug)]
struct IndexEntryV4 {
    vip: u32,
    port: u16,
    proto: u8,
    service: u32,
}

/// The IPv4 address inside an IPv4-mapped key (`::ffff:a.b.c.d`), if it is one.
#[inline]
fn mapped_v4(key: &[u8; 16]) -> Option<[u8; 4]> {
    (key[..10] == [0; 10] && key[10] == 0xff && key[11] == 0xff)
        .then(|| [key[12], key[13], key[14], key[15]])
}

/// Everything a worker needs, immutable once published.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increases with every publication.
    pub generation: u64,
    /// Source MAC written into forwarded frames (the director's interface MAC).
    pub local_mac: [u8; 6],
    /// Services, in config order.
    pub services: Vec<Service>,
    /// Backend directory indexed by `BackendId`.
    pub backends: Vec<Backend>,
    /// (vip, proto, port) -> service index; port 0 is the "every port" entry.
    index: HashMap<([u8; 16], u8, u16), u32>,
    /// The same entries as `index` when there are at most [`LINEAR_INDEX_MAX`] of them
    /// (the common case): a linear scan of a few 24-byte entries is several times cheaper
    /// per packet than SipHash-ing the key for `index`.
    linear: Option<Vec<IndexEntry>>,
    /// (vip, proto) -> service used for IP fragments (the first in config order).
    frag_index: HashMap<([u8; 16], u8), u32>,
    /// Every VIP (a handful: a linear scan beats hashing).
    vips: Vec<[u8; 16]>,
    /// The IPv4 entries of `linear`, with 4-byte VIPs (native-endian `u32` of the address
    /// bytes), for the IPv4 fast path of `forward`.
    linear_v4: Option<Vec<IndexEntryV4>>,
    /// The IPv4 VIPs of `vips`, as `linear_v4` stores them.
    vips_v4: Vec<u32>,
}

impl Snapshot {
    /// Builds a snapshot and its lookup indexes. Later services never shadow earlier ones
    /// for the same (vip, proto, port); config validation rejects such duplicates anyway.
    pub fn new(
        generation: u64,
        local_mac: [u8; 6],
        services: Vec<Service>,
        backends: Vec<Backend>,
    ) -> Self {
        let mut index = HashMap::new();
        let mut frag_index = HashMap::new();
        let mut vips = Vec::new();
        for (i, s) in services.iter().enumerate() {
            let vip = addr_key(&s.vip);
            if !vips.contains(&vip) {
                vips.push(vip);
            }
            if s.ports.is_empty() {
                index.entry((vip, s.proto, 0)).or_insert(i as u32);
            }
            for &p in &s.ports {
                index.entry((vip, s.proto, p)).or_insert(i as u32);
            }
            frag_index.entry((vip, s.proto)).or_insert(i as u32);
        }
        let linear = (index.len() <= LINEAR_INDEX_MAX).then(|| {
            index
                .iter()
                .map(|(&(vip, proto, port), &service)| IndexEntry {
                    vip,
                    proto,
                    port,
                    service,
                })
                .collect()
        });
        let linear_v4 = linear.as_ref().map(|l: &Vec<IndexEntry>| {
            l.iter()
                .filter_map(|e| {
                    mapped_v4(&e.vip).map(|v| IndexEntryV4 {
                        vip: u32::from_ne_bytes(v),
                        port: e.port,
                        proto: e.proto,
                        service: e.service,
                    })
                })
                .collect()
        });
        let vips_v4 = vips
            .iter()
            .filter_map(mapped_v4)
            .map(u32::from_ne_bytes)
            .collect();
        Snapshot {
            generation,
            local_mac,
            services,
            backends,
            index,
            linear,
            frag_index,
            vips,
            linear_v4,
            vips_v4,
        }
    }

    /// The service for a destination (vip, proto, port), falling back to an every-port
    /// service on the same VIP and protocol.
    #[inline]
    pub fn service_for(&self, vip: &[u8; 16], proto: u8, port: u16) -> Option<u32> {
        if let Some(linear) = &self.linear {
            // Keys are unique, so the exact match (if any) is the only one.
            let mut every_port = None;
            for e in linear {
                if e.proto == proto && e.vip == *vip {
                    if e.port == port {
                        return Some(e.service);
                    }
                    if e.port == 0 {
                        every_port = Some(e.service);
                    }
                }
            }
            return every_port;
        }
        self.index
            .get(&(*vip, proto, port))
            .or_else(|| self.index.get(&(*vip, proto, 0)))
            .copied()
    }

    /// [`Snapshot::service_for`] for an IPv4 VIP (the IPv4-mapped key's answer), without
    /// building the 16-byte key when the linear index is in use.
    #[inline]
    pub fn service_for_v4(&self, vip: [u8; 4], proto: u8, port: u16) -> Option<u32> {
        if let Some(linear) = &self.linear_v4 {
            let vip = u32::from_ne_bytes(vip);
            let mut every_port = None;
            for e in linear {
                if e.vip == vip && e.proto == proto {
                    if e.port == port {
                        return Some(e.service);
                    }
                    if e.port == 0 {
                        every_port = Some(e.service);
                    }
                }
            }
            return every_port;
        }
        self.service_for(&v4_key(vip), proto, port)
    }

    /// [`Snapshot::is_vip`] for an IPv4 address (its IPv4-mapped key).
    #[inline]
    pub fn is_vip_v4(&self, addr: [u8; 4]) -> bool {
        self.vips_v4.contains(&u32::from_ne_bytes(addr))
    }

    /// The service that receives IP fragments sent to (vip, proto).
    #[inline]
    pub fn fragment_service(&self, vip: &[u8; 16], proto: u8) -> Option<u32> {
        self.frag_index.get(&(*vip, proto)).copied()
    }

    /// True when `addr` is the VIP of any service.
    #[inline]
    pub fn is_vip(&self, addr: &[u8; 16]) -> bool {
        self.vips.contains(addr)
    }

    /// The backend with this id, if it exists.
    #[inline]
    pub fn backend(&self, id: BackendId) -> Option<&Backend> {
        self.backends.get(id as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(vip: [u8; 4], proto: u8, ports: Vec<u16>) -> Service {
        Service {
            name: String::new(),
            vip: IpAddr::from(vip),
            proto,
            ports,
            maglev: vec![NO_BACKEND; 7],
            sorry: None,
            on_down: OnDown::Reschedule,
        }
    }

    /// The linear index (few entries) and the hash index (many) give the same answers:
    /// exact port first, then the every-port service of the same VIP and protocol, first
    /// service in config order on duplicates.
    #[test]
    fn service_for_linear_and_hashed_agree() {
        let a = [10, 0, 0, 1];
        let b = [10, 0, 0, 2];
        let base = vec![
            svc(a, PROTO_TCP, vec![80, 443]),
            svc(a, PROTO_TCP, vec![]),
            svc(a, PROTO_UDP, vec![53]),
            svc(b, PROTO_TCP, vec![80]),
            svc(a, PROTO_TCP, vec![80]), // shadowed by service 0
        ];
        let mut big = base.clone();
        big.push(svc([10, 0, 0, 3], PROTO_UDP, (1000..1100).collect()));
        let small = Snapshot::new(1, [0; 6], base, vec![]);
        let large = Snapshot::new(1, [0; 6], big, vec![]);
        assert!(small.linear.is_some());
        assert!(large.linear.is_none());
        let ka = addr_key(&IpAddr::from(a));
        let kb = addr_key(&IpAddr::from(b));
        let kc = addr_key(&IpAddr::from([10, 0, 0, 9]));
        for s in [&small, &large] {
            assert_eq!(s.service_for(&ka, PROTO_TCP, 80), Some(0));
            assert_eq!(s.service_for(&ka, PROTO_TCP, 443), Some(0));
            assert_eq!(s.service_for(&ka, PROTO_TCP, 8080), Some(1));
            assert_eq!(s.service_for(&ka, PROTO_TCP, 0), Some(1));
            assert_eq!(s.service_for(&ka, PROTO_UDP, 53), Some(2));
            assert_eq!(s.service_for(&ka, PROTO_UDP, 54), None);
            assert_eq!(s.service_for(&kb, PROTO_TCP, 80), Some(3));
            assert_eq!(s.service_for(&kb, PROTO_TCP, 81), None);
            assert_eq!(s.service_for(&kb, PROTO_UDP, 80), None);
            assert_eq!(s.service_for(&kc, PROTO_TCP, 80), None);
        }
        let kd = addr_key(&IpAddr::from([10, 0, 0, 3]));
        assert_eq!(large.service_for(&kd, PROTO_UDP, 1050), Some(5));
    }

    /// The IPv4 lookups answer exactly what the 16-byte ones answer for the mapped key,
    /// with the linear index and with the hash index, including a VIP configured as an
    /// IPv4-mapped IPv6 address and an IPv6 VIP that must not match.
    #[test]
    fn v4_lookups_equal_mapped_key_lookups() {
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let mut base = vec![
            svc([10, 0, 0, 1], PROTO_TCP, vec![80, 443]),
            svc([10, 0, 0, 1], PROTO_TCP, vec![]),
            svc([10, 0, 0, 1], PROTO_UDP, vec![53]),
            svc([10, 0, 0, 2], PROTO_TCP, vec![80]),
        ];
        let mut m = svc([0, 0, 0, 0], PROTO_UDP, vec![5000]);
        m.vip = mapped;
        base.push(m);
        let mut s6 = svc([0, 0, 0, 0], PROTO_TCP, vec![80]);
        s6.vip = v6;
        base.push(s6);
        let mut big = base.clone();
        big.push(svc([10, 0, 0, 3], PROTO_UDP, (1000..1100).collect()));
        let small = Snapshot::new(1, [0; 6], base, vec![]);
        let large = Snapshot::new(1, [0; 6], big, vec![]);
        assert!(small.linear_v4.is_some() && large.linear_v4.is_none());
        for s in [&small, &large] {
            for last in 0..=6u8 {
                let a = [10, 0, 0, last];
                assert_eq!(s.is_vip_v4(a), s.is_vip(&v4_key(a)), "{a:?}");
                assert_eq!(v4_key(a), addr_key(&IpAddr::from(a)));
                for proto in [PROTO_TCP, PROTO_UDP, 1] {
                    for port in [0, 22, 53, 80, 443, 1050, 5000, 8080] {
                        assert_eq!(
                            s.service_for_v4(a, proto, port),
                            s.service_for(&v4_key(a), proto, port),
                            "{a:?} {proto} {port}"
                        );
                    }
                }
            }
        }
        assert_eq!(
            small.service_for_v4([10, 0, 0, 5], PROTO_UDP, 5000),
            Some(4)
        );
        assert!(small.is_vip_v4([10, 0, 0, 5]));
    }
}
