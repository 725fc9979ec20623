//! LTD Keeper: the documentation hosting control plane (products, builds, editions).
//!
//! The binary (`keeper/main.rs`) only calls [`cli::main`]; everything lives here.
//! `docs/architecture.md` has the module map and the arrows allowed between modules. What is
//! `pub` here is what the binary, the integration tests and the benchmarks use; the rest is
//! `pub(crate)`.

pub mod adopt;
pub mod api;
pub mod auth;
pub mod backends;
pub(crate) mod catalog;
pub mod cdn;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub(crate) mod error;
pub mod metrics;
pub mod ops;
pub mod org_admin;
pub mod org_settings;
pub mod pages;
pub mod recover;
pub(crate) mod retry;
pub(crate) mod server;
pub(crate) mod shutdown;
pub mod startup;
pub mod storage;
pub(crate) mod telemetry;
pub mod verify;
pub(crate) mod worker;
