//! End-to-end tests: the `peapod` binary driven as a user would, against the real kernel.
//! Each test has its own state roots, pod names and cgroups, and cleans up even when it
//! fails, so the tests run in parallel.

mod harness;

mod cli;
mod deletion;
mod examples;
mod hooks;
mod images;
mod lifecycle;
mod manifests;
mod namespaces;
mod network;
mod probes;
mod readonly;
mod registry;
mod resources;
mod security;
mod shim;
mod sidecars;
mod userns;
mod volumes;
mod workloads;
