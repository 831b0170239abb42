//! Messages to people: account mail ([`mail`]), and notifications (confirmations,
//! reminders, waitlist offers) through the [`outbox`] and its [`dispatch`]er, by email,
//! SMS or WhatsApp (a Twilio-compatible API), and a signed webhook. What they say is in
//! [`messages`]: templates per [`language`], the one each person chose.

pub mod dispatch;
pub mod ics;
pub mod language;
pub mod mail;
pub mod messages;
pub mod outbox;
