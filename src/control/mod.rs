//! The control plane: snapshot publication, neighbour resolution, VIP addresses, and the
//! daemon that ties the data plane to them (health checks and VRRP plug in here).

pub mod health;
pub mod netlink;
pub mod publish;
pub mod reload;
pub mod status;
pub mod vrrp;
