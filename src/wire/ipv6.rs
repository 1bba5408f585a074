//! ipv6 view (to be written).
