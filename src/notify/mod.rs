//! Messages to people: mail today; SMS, WhatsApp and webhooks join here later.

pub mod mail;
