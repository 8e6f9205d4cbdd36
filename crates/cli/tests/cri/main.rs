//! The CRI server driven with a gRPC client as a kubelet drives it: every RPC peapod
//! serves, the idempotence rules, what `apply`'s pods and CRI sandboxes see of each other,
//! restore after the server is killed, and a burst of sandbox creations.

mod harness;

mod containers;
mod images;
mod restore;
mod sandboxes;
mod streaming;
