//! hash (to be written).
