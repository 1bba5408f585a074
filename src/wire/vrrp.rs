//! vrrp view (to be written).
