//! What the signed-in patient owes: their issued invoices with what is still to pay. The
//! same rule as REST (`billing::mine`: only one's own, never drafts) decides.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::billing::{self, InvoiceKind, InvoiceStatus};
use crate::tools::{Audience, Tool, ToolContext, ToolError};

/// An invoice in one line.
#[derive(Clone, Debug, Serialize)]
pub struct InvoiceLine {
    pub number: String,
    pub clinic: String,
    pub issued_at: Option<DateTime<Utc>>,
    /// `issued` (owed), `paid` or `void`.
    pub status: InvoiceStatus,
    pub total: String,
    pub paid: String,
    /// Still to pay, e.g. `45.00 EUR`.
    pub owed: String,
    pub owed_cents: i64,
    pub currency: String,
    /// Where the patient reads and downloads it.
    pub link: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Owing {
    /// What is owed in all, per currency, e.g. `["45.00 EUR"]`; empty when nothing is.
    pub owed: Vec<String>,
    pub invoices: Vec<InvoiceLine>,
}

pub struct MyInvoices;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MyInvoicesArgs {
    /// Only invoices not paid in full (default false: the latest ones of any state).
    #[serde(default)]
    pub owed_only: bool,
    /// How many invoices to give (default 10, at most 50).
    #[serde(default)]
    pub limit: Option<u32>,
}

impl Tool for MyInvoices {
    const NAME: &'static str = "my_invoices";
    const AUDIENCE: Audience = Audience::SignedIn;
    const DESCRIPTION: &'static str = "The signed-in patient's invoices (issued ones), newest first, with what each still owes and the total owed per currency: answers \"what do I owe?\". There is no way to see anyone else's.";
    type Args = MyInvoicesArgs;
    type Output = Owing;

    async fn call(ctx: &ToolContext<'_>, args: Self::Args) -> Result<Self::Output, ToolError> {
        let limit = args.limit.unwrap_or(10).clamp(1, 50) as usize;
        let mine = billing::mine(ctx.db, ctx.actor).await?;
        let mut owed: Vec<(String, i64)> = Vec::new();
        for i in &mine {
            if i.balance_cents > 0 {
                match owed.iter_mut().find(|(c, _)| *c == i.currency) {
                    Some((_, sum)) => *sum += i.balance_cents,
                    None => owed.push((i.currency.clone(), i.balance_cents)),
                }
            }
        }
        let invoices = mine
            .into_iter()
            .filter(|i| i.kind == InvoiceKind::Invoice)
            .filter(|i| !args.owed_only || i.balance_cents > 0)
            .take(limit)
            .map(|i| InvoiceLine {
                number: i.number.clone().unwrap_or_default(),
                clinic: i.clinic_name.clone(),
                issued_at: i.issued_at,
                status: i.status,
                total: format!("{} {}", billing::money(i.total_cents), i.currency),
                paid: format!("{} {}", billing::money(i.paid_cents), i.currency),
                owed: format!("{} {}", billing::money(i.balance_cents), i.currency),
                owed_cents: i.balance_cents,
                link: format!("/invoices/{}", i.id),
                currency: i.currency,
            })
            .collect();
        Ok(Owing {
            owed: owed
                .into_iter()
                .map(|(c, cents)| format!("{} {c}", billing::money(cents)))
                .collect(),
            invoices,
        })
    }
}
