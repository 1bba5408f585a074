//! bpf (to be written).
