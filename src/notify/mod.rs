//! Messages to people: account mail ([`mail`]), and notifications (confirmations,
//! reminders, waitlist offers) through the [`outbox`] and its [`dispatch`]er, by email,
//! SMS or WhatsApp (a Twilio-compatible API), and a signed webhook.

pub mod dispatch;
pub mod ics;
pub mod mail;
pub mod outbox;
