//! The data plane: the XDP program's loader and maps (`bpf`), AF_XDP sockets (`xsk`, all
//! `unsafe` lives there), the per-queue worker loop (`worker`) and the pure per-frame
//! decision (`forward`).

pub mod bpf;
pub mod forward;
pub mod worker;
pub mod xsk;
