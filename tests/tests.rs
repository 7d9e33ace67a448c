//! Integration tests: each drives the built `wove-worker` binary with real
//! payloads against a loopback receiver.

mod support;

mod bad_payload;
mod bounds;
mod cli;
mod delivery;
mod docs;
mod fan_out;
mod faults;
mod hostile_parent;
mod hostile_receiver;
mod layers;
mod oom;
mod runners;
mod secrets;
mod subprocess;
#[cfg(feature = "wasm")]
mod wasm;
mod wire;
