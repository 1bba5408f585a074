//! Builds data-plane snapshots from the config and the control plane's view of each real
//! server (health, MAC), with backend ids that stay stable for the life of the process.
//!
//! Guarantees: the same config and states always give the same snapshot (Maglev tables
//! depend only on real-server addresses and weights, never on ids or order), a backend id
//! is never reused for a different (service, address), and a real server without a MAC or
//! that is down never appears in a Maglev table.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::{Config, Protocol, VirtualServer};
use crate::lb::maglev;
use crate::lb::tables::{
    Backend, BackendId, BackendState, Service, Snapshot, NO_BACKEND, PROTO_TCP, PROTO_UDP,
};

/// Identity of a backend: the service name and the real server's address. The sorry
/// server of a service is a backend of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BackendKey {
    /// Virtual service name.
    pub service: String,
    /// Real server address.
    pub addr: IpAddr,
    /// True for the service's sorry server.
    pub sorry: bool,
}

/// What the control plane knows about one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendStatus {
    /// Health checks say up (true when the server has no check).
    pub healthy: bool,
    /// Resolved (or configured) MAC.
    pub mac: Option<[u8; 6]>,
}

impl Default for BackendStatus {
    fn default() -> Self {
        BackendStatus {
            healthy: true,
            mac: None,
        }
    }
}

/// Stable backend ids plus each backend's status.
#[derive(Debug, Default)]
pub struct Registry {
    ids: HashMap<BackendKey, BackendId>,
    keys: Vec<BackendKey>,
    status: Vec<BackendStatus>,
}

impl Registry {
    /// The id for a key, allocating a new one the first time the key is seen.
    pub fn id(&mut self, key: &BackendKey) -> BackendId {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as BackendId;
        self.ids.insert(key.clone(), id);
        self.keys.push(key.clone());
        self.status.push(BackendStatus::default());
        id
    }

    /// Looks an id up without allocating.
    pub fn get(&self, key: &BackendKey) -> Option<BackendId> {
        self.ids.get(key).copied()
    }

    /// Key of an id.
    pub fn key(&self, id: BackendId) -> Option<&BackendKey> {
        self.keys.get(id as usize)
    }

    /// Status of an id.
    pub fn status(&self, id: BackendId) -> Option<&BackendStatus> {
        self.status.get(id as usize)
    }

    /// Mutable status of an id.
    pub fn status_mut(&mut self, id: BackendId) -> Option<&mut BackendStatus> {
        self.status.get_mut(id as usize)
    }

    /// Allocates ids for every real server and sorry server of `cfg`, and applies MACs
    /// given in the config.
    pub fn sync(&mut self, cfg: &Config) {
        for vs in &cfg.virtual_servers {
            for rs in &vs.real_servers {
                let id = self.id(&BackendKey {
                    service: vs.name.clone(),
                    addr: rs.address,
                    sorry: false,
                });
                if let Some(mac) = rs.mac {
                    self.status[id as usize].mac = Some(mac);
                }
            }
            if let Some(addr) = vs.sorry_server {
                self.id(&BackendKey {
                    service: vs.name.clone(),
                    addr,
                    sorry: true,
                });
            }
        }
    }

    /// Every (id, address) whose MAC must come from the neighbour table.
    pub fn unresolved(&self, cfg: &Config) -> Vec<(BackendId, IpAddr)> {
        let mut out = Vec::new();
        for vs in &cfg.virtual_servers {
            for rs in vs.real_servers.iter().filter(|r| r.mac.is_none()) {
                if let Some(id) = self.get(&BackendKey {
                    service: vs.name.clone(),
                    addr: rs.address,
                    sorry: false,
                }) {
                    out.push((id, rs.address));
                }
            }
            if let Some(addr) = vs.sorry_server {
                if let Some(id) = self.get(&BackendKey {
                    service: vs.name.clone(),
                    addr,
                    sorry: true,
                }) {
                    out.push((id, addr));
                }
            }
        }
        out
    }
}

/// Errors building a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Maglev rejected a service's table parameters.
    #[error("virtual server {service}: {source}")]
    Maglev {
        /// Service name.
        service: String,
        /// Underlying error.
        source: maglev::MaglevError,
    },
}

fn proto_number(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
    }
}

/// Effective data-plane state of one real server.
fn effective_state(weight: u32, status: &BackendStatus, inhibit: bool) -> BackendState {
    match (status.healthy, weight) {
        (true, 0) => BackendState::Drain,
        (true, _) => BackendState::Up,
        (false, _) if inhibit => BackendState::Drain,
        (false, _) => BackendState::Down,
    }
}

/// Builds the snapshot for `cfg` from the registry's statuses. Backends known to the
/// registry but no longer in `cfg` appear as `Down`.
pub fn build_snapshot(
    cfg: &Config,
    reg: &mut Registry,
    generation: u64,
    local_mac: [u8; 6],
) -> Result<Snapshot, PublishError> {
    reg.sync(cfg);
    let mut backends: Vec<Backend> = reg
        .keys
        .iter()
        .zip(&reg.status)
        .map(|(k, s)| Backend {
            addr: k.addr,
            mac: s.mac,
            state: BackendState::Down,
            service: u32::MAX,
        })
        .collect();
    let mut services = Vec::with_capacity(cfg.virtual_servers.len());
    for (si, vs) in cfg.virtual_servers.iter().enumerate() {
        services.push(build_service(vs, si as u32, reg, &mut backends)?);
    }
    Ok(Snapshot::new(generation, local_mac, services, backends))
}

fn build_service(
    vs: &VirtualServer,
    si: u32,
    reg: &Registry,
    backends: &mut [Backend],
) -> Result<Service, PublishError> {
    let mut members: Vec<(IpAddr, u32)> = Vec::with_capacity(vs.real_servers.len());
    let mut member_ids: Vec<BackendId> = Vec::with_capacity(vs.real_servers.len());
    for rs in &vs.real_servers {
        let key = BackendKey {
            service: vs.name.clone(),
            addr: rs.address,
            sorry: false,
        };
        let Some(id) = reg.get(&key) else { continue };
        let status = &reg.status[id as usize];
        let state = effective_state(rs.weight, status, vs.inhibit_on_failure);
        let b = &mut backends[id as usize];
        b.state = state;
        b.service = si;
        // Only servers that can take new flows and have a MAC enter the table.
        if state == BackendState::Up && status.mac.is_some() {
            members.push((rs.address, rs.weight));
            member_ids.push(id);
        }
    }
    let table = maglev::build(&members, vs.table_size).map_err(|source| PublishError::Maglev {
        service: vs.name.clone(),
        source,
    })?;
    let maglev: Vec<BackendId> = table
        .into_iter()
        .map(|i| {
            if i == NO_BACKEND {
                NO_BACKEND
            } else {
                member_ids[i as usize]
            }
        })
        .collect();
    let sorry = vs.sorry_server.and_then(|addr| {
        let id = reg.get(&BackendKey {
            service: vs.name.clone(),
            addr,
            sorry: true,
        })?;
        let b = &mut backends[id as usize];
        b.state = BackendState::Up;
        b.service = si;
        Some(id)
    });
    Ok(Service {
        name: vs.name.clone(),
        vip: vs.vip,
        proto: proto_number(vs.protocol),
        ports: vs.ports.clone(),
        maglev,
        sorry,
        on_down: vs.on_down,
    })
}
