//! Load-balancing core: stable hashing, Maglev tables, per-worker flow tables and the
//! immutable snapshots the control plane publishes to the workers.

pub mod flow;
pub mod hash;
pub mod maglev;
pub mod tables;
