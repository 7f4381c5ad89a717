//! Funetun core types.
