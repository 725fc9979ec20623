//! LTD Keeper: the documentation hosting control plane (products, builds, editions).
//!
//! The binary (`keeper/main.rs`) only calls [`cli::main`]; everything lives here.

pub mod api;
pub mod auth;
pub mod backends;
pub mod catalog;
pub mod cdn;
pub mod cli;
pub mod client;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod ops;
pub mod org_admin;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod worker;
