//! API tests: the real service over HTTP, on SQLite and (with TEST_DATABASE_URL) PostgreSQL.

mod helpers;
mod model_server;
mod smtp;

mod agent_models;
mod architecture;
mod audit;
mod auth;
mod bad_input;
mod billing;
mod booking;
mod browser;
mod care;
mod chat;
mod cli;
mod clinical;
mod fuzz;
mod jobs;
mod messages;
mod mfa;
mod pharmacy;
mod platform;
mod roles;
mod scheduling;
mod schema_parity;
mod security;
mod shifts;
mod sync;
mod team;
mod time_zones;
mod tokens;
mod transcripts;
mod web;
