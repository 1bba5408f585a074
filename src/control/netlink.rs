//! Kernel state through rtnetlink: the neighbour table (real servers' MACs), the VIP
//! addresses on the director's interface, and interface facts (index, MAC, queues).
//!
//! Guarantees: adding a VIP that is already present, or removing one that is absent, is
//! not an error (both are idempotent, as keepalived's address handling is); IPv6 VIPs are
//! added with `nodad` so they are usable at once.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlag, CacheInfo};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourState};
use rtnetlink::{Handle, IpVersion};

/// Errors talking to the kernel.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The interface does not exist.
    #[error("interface {0}: no such interface")]
    NoInterface(String),
    /// Reading a sysfs attribute failed.
    #[error("interface {ifname}: reading {what}: {source}")]
    Sysfs {
        /// Interface.
        ifname: String,
        /// Attribute.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The netlink connection could not be opened.
    #[error("netlink: {0}")]
    Io(#[from] std::io::Error),
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Request(#[from] rtnetlink::Error),
}

/// Interface index of `ifname`.
pub fn ifindex(ifname: &str) -> Result<u32, NetlinkError> {
    let c = std::ffi::CString::new(ifname).map_err(|_| NetlinkError::NoInterface(ifname.into()))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(NetlinkError::NoInterface(ifname.into()));
    }
    Ok(idx)
}

/// The interface's MAC address, from sysfs.
pub fn mac_address(ifname: &str) -> Result<[u8; 6], NetlinkError> {
    let text =
        std::fs::read_to_string(format!("/sys/class/net/{ifname}/address")).map_err(|source| {
            NetlinkError::Sysfs {
                ifname: ifname.into(),
                what: "address",
                source,
            }
        })?;
    parse_mac(text.trim()).ok_or_else(|| NetlinkError::Sysfs {
        ifname: ifname.into(),
        what: "address",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a MAC address"),
    })
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
    )
}

/// Number of rx queues of the interface (sysfs `queues/rx-*`).
pub fn rx_queue_count(ifname: &str) -> Result<u32, NetlinkError> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{ifname}/queues")).map_err(|source| {
        NetlinkError::Sysfs {
            ifname: ifname.into(),
            what: "queues",
            source,
        }
    })?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count() as u32;
    Ok(n.max(1))
}

/// A connected rtnetlink handle (its connection task runs on the current tokio runtime).
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the connection; must be called inside a tokio runtime.
    pub fn connect() -> Result<Self, NetlinkError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    /// MACs of `addrs` in the neighbour table of interface `ifindex` (only usable states:
    /// reachable, stale, delay, probe, permanent, noarp).
    pub async fn neighbours(
        &self,
        ifindex: u32,
        addrs: &[IpAddr],
    ) -> Result<HashMap<IpAddr, [u8; 6]>, NetlinkError> {
        let mut out = HashMap::new();
        for ver in [IpVersion::V4, IpVersion::V6] {
            let want_v4 = matches!(ver, IpVersion::V4);
            if !addrs.iter().any(|a| a.is_ipv4() == want_v4) {
                continue;
            }
            let mut stream = self.handle.neighbours().get().set_family(ver).execute();
            while let Some(msg) = stream.try_next().await? {
                if msg.header.ifindex != ifindex {
                    continue;
                }
                if !matches!(
                    msg.header.state,
                    NeighbourState::Reachable
                        | NeighbourState::Stale
                        | NeighbourState::Delay
                        | NeighbourState::Probe
                        | NeighbourState::Permanent
                        | NeighbourState::Noarp
                ) {
                    continue;
                }
                let mut ip = None;
                let mut mac = None;
                for attr in &msg.attributes {
                    match attr {
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                            ip = Some(IpAddr::V4(*a))
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                            ip = Some(IpAddr::V6(*a))
                        }
                        NeighbourAttribute::LinkLocalAddress(l) if l.len() == 6 => {
                            let mut m = [0u8; 6];
                            m.copy_from_slice(l);
                            mac = Some(m);
                        }
                        _ => {}
                    }
                }
                if let (Some(ip), Some(mac)) = (ip, mac) {
                    if addrs.contains(&ip) {
                        out.insert(ip, mac);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Adds `addr` (/32 or /128, nodad) to the interface; already present is fine.
    pub async fn add_address(&self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        let mut req = self.handle.address().add(ifindex, addr, prefix);
        if addr.is_ipv6() {
            let msg = req.message_mut();
            msg.header.flags.push(AddressHeaderFlag::Nodad);
            // Deprecated (preferred lifetime 0, valid forever): the VIP still receives
            // traffic, but the kernel never picks it as the source of the director's own
            // connections. A /128 VIP otherwise wins source selection (longest match,
            // capped by prefix length) for on-link peers, and health probes to real
            // servers, which hold the VIP on lo, would never see their replies.
            let mut life = CacheInfo::default();
            life.ifa_preferred = 0;
            life.ifa_valid = u32::MAX;
            msg.attributes.push(AddressAttribute::CacheInfo(life));
        }
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::EEXIST => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `addr` from the interface if present.
    pub async fn del_address(&self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(ifindex)
            .execute();
        while let Some(msg) = stream.try_next().await? {
            let matches = msg.attributes.iter().any(|a| {
                matches!(a, AddressAttribute::Address(x) | AddressAttribute::Local(x) if *x == addr)
            });
            if matches {
                match self.handle.address().del(msg).execute().await {
                    Ok(()) => {}
                    Err(rtnetlink::Error::NetlinkError(e))
                        if e.raw_code() == -libc::EADDRNOTAVAIL => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Makes the kernel resolve `addr`'s link-layer address: a zero-length UDP datagram to
/// the discard port (9) starts ARP / neighbour discovery without needing a raw socket.
pub fn solicit(addr: IpAddr) {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid literal")
    } else {
        "[::]:0".parse().expect("valid literal")
    };
    if let Ok(sock) = UdpSocket::bind(bind) {
        let _ = sock.send_to(&[], SocketAddr::new(addr, 9));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m = parse_mac("02:99:00:00:00:0b").unwrap();
        assert_eq!(m, [2, 0x99, 0, 0, 0, 0x0b]);
        assert_eq!(format_mac(&m), "02:99:00:00:00:0b");
        assert!(parse_mac("02:99:00:00:00").is_none());
        assert!(parse_mac("02:99:00:00:00:0b:01").is_none());
        assert!(parse_mac("zz:99:00:00:00:0b").is_none());
    }
}
