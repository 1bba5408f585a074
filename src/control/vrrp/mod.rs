//! VRRP for xlb: version 2 (RFC 3768) and version 3 (RFC 5798, revised by RFC 9568) over
//! IPv4, version 3 over IPv6, keepalived-compatible on the wire.
//!
//! - [`machine`]: the pure state machine (time passed in, no I/O), table-tested.
//! - [`codec`]: advert validation / emission and the gratuitous ARP / NA frames.
//! - [`io`]: raw sockets and the per-instance task; [`spawn`] starts one instance on the
//!   current tokio runtime and reports every transition as a [`VrrpEvent`].
//!
//! Guarantees: no packet input panics; every dropped packet is counted by reason
//! ([`VrrpCounters`]); a master sends a priority-0 advert on [`VrrpHandle::shutdown`].

pub mod codec;
pub mod io;
pub mod machine;

pub use io::{spawn, VrrpCounters, VrrpHandle};
pub use machine::State;

/// A state transition of one instance, for the daemon (which adds / removes the VIPs and
/// flips the data plane's active flag) and for logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VrrpEvent {
    /// Instance name.
    pub instance: String,
    /// The new state.
    pub state: State,
    /// Why (e.g. "higher priority 150 from 10.99.0.2").
    pub reason: String,
}

/// Errors starting an instance.
#[derive(Debug, thiserror::Error)]
pub enum VrrpError {
    /// A socket or interface query failed.
    #[error("vrrp instance {instance}: interface {ifname}: {what}: {source}")]
    Socket {
        /// Instance name.
        instance: String,
        /// Interface.
        ifname: String,
        /// What was being done.
        what: &'static str,
        /// Cause.
        source: std::io::Error,
    },
    /// The interface has no address to send adverts from.
    #[error(
        "vrrp instance {instance}: interface {ifname} has no {family} address to send adverts from"
    )]
    NoSourceAddress {
        /// Instance name.
        instance: String,
        /// Interface.
        ifname: String,
        /// "IPv4" or "IPv6 link-local".
        family: &'static str,
    },
}
