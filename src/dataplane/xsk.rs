//! xsk (to be written).
