//! Funetun ML.
