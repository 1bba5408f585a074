//! Packet views (smoltcp style): zero-copy, bounds-checked once by `new_checked`, never
//! panicking afterwards; setters rewrite in place.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vrrp;
