//! ipv4 view (to be written).
