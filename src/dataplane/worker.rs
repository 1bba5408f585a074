//! worker (to be written).
