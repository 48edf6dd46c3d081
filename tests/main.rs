//! Tessera's one integration-test binary: every suite is a module here, so
//! the test build links DataFusion once.

mod common;
mod compare;
mod configurations;
mod definitions;
mod differential;
mod errors;
mod hostile_states;
mod interop;
mod plans;
mod slt;
mod smoke;
mod states;
mod tiles;
