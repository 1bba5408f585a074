//! Packet views (smoltcp style): zero-copy, bounds-checked once by `new_checked`, never
//! panicking afterwards; setters rewrite in place.
//!
//! Every view is a thin wrapper `Packet<T: AsRef<[u8]>>` (or `Frame<T>` for Ethernet)
//! over a borrowed or owned buffer. `new_checked` validates every length the accessors
//! rely on, so after it succeeds no getter or setter can index out of bounds; getters
//! return plain values (`u16`, `[u8; 4]`, ...) and never allocate. Checksums are
//! ones-complement (RFC 1071) and can be updated incrementally (RFC 1624), see
//! [`checksum`]. Emit helpers (`emit`, `build_*`) write into a caller-provided buffer and
//! return [`Error::BufferTooSmall`] rather than panic when it is too short.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vrrp;

/// Errors of every view and emitter in `wire`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the header (or a length field) says it should.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field holds a value the format does not allow (version, IHL, data offset, ...).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// Well-formed, but not something this view handles (e.g. ARP for a non-IPv4 protocol).
    #[error("unsupported {0}")]
    Unsupported(&'static str),
    /// An IPv6 extension-header chain longer than the walk allows.
    #[error("too many IPv6 extension headers")]
    TooManyExtensions,
    /// The output buffer of an emitter is too short.
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
}

/// Fails with [`Error::BufferTooSmall`] unless `buf` holds at least `need` bytes.
#[inline]
pub(crate) fn need_space(buf: &[u8], need: usize) -> Result<(), Error> {
    if buf.len() < need {
        Err(Error::BufferTooSmall {
            need,
            have: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Big-endian u16 at `off`; 0 if out of range (callers check lengths first).
#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    match b.get(off..off + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Big-endian u32 at `off`; 0 if out of range (callers check lengths first).
#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    match b.get(off..off + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

/// Copies `N` bytes at `off`; zeros if out of range (callers check lengths first).
#[inline]
pub(crate) fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(off..off + N) {
        out.copy_from_slice(s);
    }
    out
}

/// Writes `v` big-endian at `off`; does nothing if out of range.
#[inline]
pub(crate) fn put16(b: &mut [u8], off: usize, v: u16) {
    if let Some(s) = b.get_mut(off..off + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Writes `v` big-endian at `off`; does nothing if out of range.
#[inline]
pub(crate) fn put32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// Copies `v` to `off`; does nothing if out of range.
#[inline]
pub(crate) fn put_bytes(b: &mut [u8], off: usize, v: &[u8]) {
    if let Some(s) = b.get_mut(off..off + v.len()) {
        s.copy_from_slice(v);
    }
}

/// Byte at `off`; 0 if out of range.
#[inline]
pub(crate) fn byte(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Writes the byte at `off`; does nothing if out of range.
#[inline]
pub(crate) fn put_byte(b: &mut [u8], off: usize, v: u8) {
    if let Some(x) = b.get_mut(off) {
        *x = v;
    }
}
