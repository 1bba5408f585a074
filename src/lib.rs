//! xlb: a userspace L4 load balancer for Linux director nodes (LVS-DR style) on AF_XDP.
//!
//! The crate is a pure core (`wire`, `lb`, `dataplane::forward`) that decides what happens
//! to each frame, and a thin shell (`dataplane::{bpf, xsk, worker}`, `control`) that moves
//! frames and runs the control plane. See DESIGN notes in the README.

pub mod config;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod lb;
pub mod metrics;
pub mod wire;
