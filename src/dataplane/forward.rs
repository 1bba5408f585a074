//! forward (to be written).
