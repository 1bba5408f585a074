//! Facts about the machine that validation needs: how many CPUs exist and which addresses
//! an interface holds.
//!
//! [`SystemEnvironment`] asks the running system (sysconf for CPUs, an rtnetlink address
//! dump for addresses, on a short-lived thread of its own so it is safe to call from
//! inside or outside an async runtime); [`StaticEnvironment`] is a fixed answer for tests,
//! fuzzing and offline checks. Neither panics; a failed lookup reads as "no addresses".

use std::net::IpAddr;

/// What validation needs to know about the machine.
pub trait Environment {
    /// Number of CPUs; valid core ids are `0..cpu_count()`.
    fn cpu_count(&self) -> usize;
    /// Addresses currently configured on the interface `ifname` (empty if it does not
    /// exist or cannot be read).
    fn interface_addrs(&self, ifname: &str) -> Vec<IpAddr>;
}

/// The machine xlb runs on.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn cpu_count(&self) -> usize {
        // Configured CPUs (ids 0..n), not the affinity mask of this process: the workers
        // pin themselves, and a config checked from a restricted shell stays valid.
        let n = std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list_max(s.trim()))
            .map(|max| max + 1);
        n.or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1)
    }

    fn interface_addrs(&self, ifname: &str) -> Vec<IpAddr> {
        if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
            return Vec::new();
        }
        let Some(index) = std::fs::read_to_string(format!("/sys/class/net/{ifname}/ifindex"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            return Vec::new();
        };
        // A thread of its own: building a runtime inside a running one would panic.
        std::thread::spawn(move || addrs_by_netlink(index).unwrap_or_default())
            .join()
            .unwrap_or_default()
    }
}

/// Highest id in a kernel CPU list such as "0-3,8-11".
fn parse_cpu_list_max(list: &str) -> Option<usize> {
    list.split(',')
        .filter_map(|part| part.rsplit('-').next()?.trim().parse::<usize>().ok())
        .max()
}

fn addrs_by_netlink(index: u32) -> std::io::Result<Vec<IpAddr>> {
    use futures::TryStreamExt;
    use netlink_packet_route::address::AddressAttribute;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async move {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        let task = tokio::spawn(conn);
        let mut stream = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut addrs = Vec::new();
        let fetch = async {
            while let Some(msg) = stream.try_next().await.map_err(std::io::Error::other)? {
                for attr in msg.attributes {
                    if let AddressAttribute::Address(a) | AddressAttribute::Local(a) = attr {
                        if !addrs.contains(&a) {
                            addrs.push(a);
                        }
                    }
                }
            }
            Ok::<_, std::io::Error>(())
        };
        let res = tokio::time::timeout(std::time::Duration::from_secs(2), fetch).await;
        task.abort();
        match res {
            Ok(r) => r.map(|()| addrs),
            Err(_) => Err(std::io::Error::other("netlink address dump timed out")),
        }
    })
}

/// A fixed environment: a CPU count and a list of interfaces with their addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaticEnvironment {
    /// Number of CPUs.
    pub cpus: usize,
    /// Interfaces and their addresses.
    pub interfaces: Vec<(String, Vec<IpAddr>)>,
}

impl StaticEnvironment {
    /// An environment with `cpus` CPUs and no interfaces.
    pub fn new(cpus: usize) -> Self {
        StaticEnvironment {
            cpus,
            interfaces: Vec::new(),
        }
    }

    /// Add an interface with its addresses.
    pub fn with_interface(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        self.interfaces.push((name.to_owned(), addrs.to_vec()));
        self
    }
}

impl Environment for StaticEnvironment {
    fn cpu_count(&self) -> usize {
        self.cpus
    }

    fn interface_addrs(&self, ifname: &str) -> Vec<IpAddr> {
        self.interfaces
            .iter()
            .filter(|(name, _)| name == ifname)
            .flat_map(|(_, addrs)| addrs.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_list_parsing() {
        assert_eq!(parse_cpu_list_max("0"), Some(0));
        assert_eq!(parse_cpu_list_max("0-3"), Some(3));
        assert_eq!(parse_cpu_list_max("0-3,8-11"), Some(11));
        assert_eq!(parse_cpu_list_max(""), None);
    }

    #[test]
    fn system_environment_sees_loopback() {
        let env = SystemEnvironment;
        assert!(env.cpu_count() >= 1);
        let lo = env.interface_addrs("lo");
        assert!(lo.contains(&IpAddr::from([127, 0, 0, 1])), "lo has {lo:?}");
        assert!(env.interface_addrs("no-such-if0").is_empty());
    }
}
