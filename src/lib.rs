//! Gatehouse.
