//! maglev (to be written).
