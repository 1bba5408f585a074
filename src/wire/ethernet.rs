//! ethernet view (to be written).
