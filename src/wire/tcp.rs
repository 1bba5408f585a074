//! tcp view (to be written).
