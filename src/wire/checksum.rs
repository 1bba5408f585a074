//! checksum view (to be written).
