//! flow (to be written).
