//! icmp view (to be written).
