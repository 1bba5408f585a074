//! udp view (to be written).
