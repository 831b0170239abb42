//! Clinic: a conversational booking agent service for clinics.
//!
//! `http` (REST) and `cli` call `domain`, which owns the rules and the SQL on `db`;
//! `crypto` keeps secrets at rest, `notify` sends mail and notifications, `jobs` runs the
//! periodic work, and `web` serves the widget, the admin console and the doctors' pages.

pub mod agent;
pub mod app;
pub mod cache;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod demo;
pub mod domain;
pub mod error;
pub mod eval;
pub mod http;
pub mod jobs;
pub mod llm;
pub mod notify;
pub mod state;
pub mod storage;
pub mod tools;
pub mod web;
pub mod zone;

/// Installs ring as rustls' process-wide crypto provider (the build carries no other).
pub fn install_crypto_provider() {
    // Installing twice (tests start many apps) is harmless; the first one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
