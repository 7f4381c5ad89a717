//! Proof of training: the six checks over a chain of checkpoints.
