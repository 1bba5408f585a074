//! VRRP (v2 RFC 3768, v3 RFC 5798 / RFC 9568), keepalived-compatible.
pub mod codec;
pub mod machine;
