//! arp view (to be written).
