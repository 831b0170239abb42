//! An invoice as a one-page (or longer) A4 PDF: the clinic (name, address, contacts), the
//! number and dates, whom it is billed to, the lines with their tax, the totals and the
//! payments. Written with `pdf-writer` in the PDF standard fonts (Helvetica for text,
//! Courier for amounts, so figures line up), encoded as Windows-1252, which covers the
//! Latin scripts the clinics write in; anything else prints as `?`.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use crate::domain::billing::{Invoice, InvoiceKind, money};
use crate::domain::clinics::Clinic;

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const LEFT: f32 = 50.0;
const RIGHT: f32 = WIDTH - 50.0;
const TOP: f32 = HEIGHT - 60.0;
const BOTTOM: f32 = 60.0;

const TEXT: Name = Name(b"F1");
const BOLD: Name = Name(b"F2");
const FIGURES: Name = Name(b"F3");

/// Text in the fonts' encoding.
fn winansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let mut buf = [0u8; 4];
        let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut buf));
        if unmappable || c.is_control() {
            out.push(b'?');
        } else {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

/// Pages of text, laid out top to bottom.
struct Pages {
    done: Vec<Vec<u8>>,
    page: Content,
    y: f32,
}

impl Pages {
    fn new() -> Self {
        Self {
            done: Vec::new(),
            page: Content::new(),
            y: TOP,
        }
    }

    fn room(&mut self, height: f32) {
        if self.y - height < BOTTOM {
            let page = std::mem::replace(&mut self.page, Content::new());
            self.done.push(page.finish().into_vec());
            self.y = TOP;
        }
    }

    fn text(&mut self, font: Name, size: f32, x: f32, text: &str) {
        let bytes = winansi(text);
        self.page
            .begin_text()
            .set_font(font, size)
            .next_line(x, self.y)
            .show(Str(&bytes))
            .end_text();
    }

    /// Figures right-aligned at `right` (Courier: every glyph is 0.6 em wide).
    fn figure(&mut self, size: f32, right: f32, text: &str) {
        let width = text.chars().count() as f32 * 0.6 * size;
        self.text(FIGURES, size, right - width, text);
    }

    fn down(&mut self, by: f32) {
        self.y -= by;
    }

    fn rule(&mut self) {
        self.page
            .set_line_width(0.5)
            .move_to(LEFT, self.y)
            .line_to(RIGHT, self.y)
            .stroke();
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.done.push(self.page.finish().into_vec());
        self.done
    }
}

/// Cuts text to fit `max` characters.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The invoice as PDF bytes.
pub fn render(inv: &Invoice, clinic: &Clinic) -> Vec<u8> {
    let mut p = Pages::new();
    let title = match (inv.kind, &inv.number) {
        (InvoiceKind::CreditNote, Some(n)) => format!("Credit note {n}"),
        (InvoiceKind::Invoice, Some(n)) => format!("Invoice {n}"),
        _ => "Invoice (draft)".to_owned(),
    };
    p.text(BOLD, 16.0, LEFT, &clinic.name);
    p.text(BOLD, 14.0, 330.0, &title);
    p.down(18.0);
    for line in clinic.address.lines() {
        p.text(TEXT, 10.0, LEFT, line);
        p.down(13.0);
    }
    p.text(
        TEXT,
        10.0,
        LEFT,
        &format!("{} · {}", clinic.contact_email, clinic.contact_phone),
    );
    if let Some(at) = inv.issued_at {
        p.text(
            TEXT,
            10.0,
            330.0,
            &format!(
                "Issued {}",
                at.with_timezone(&clinic.tz()).format("%Y-%m-%d")
            ),
        );
    }
    p.down(13.0);
    p.text(
        TEXT,
        10.0,
        330.0,
        &format!("Status: {}", inv.status.as_str()),
    );
    p.down(28.0);
    p.text(BOLD, 10.0, LEFT, "Bill to");
    p.down(13.0);
    for line in inv.bill_to.lines().filter(|l| !l.trim().is_empty()) {
        p.text(TEXT, 10.0, LEFT, line);
        p.down(13.0);
    }
    if !inv.note.is_empty() {
        p.down(6.0);
        p.text(TEXT, 9.0, LEFT, &fit(&inv.note, 110));
        p.down(12.0);
    }
    p.down(14.0);
    // Columns: item, quantity, each, net, tax, total.
    let cols = [
        (330.0, "Qty"),
        (395.0, "Each"),
        (450.0, "Net"),
        (490.0, "Tax"),
        (RIGHT, "Total"),
    ];
    p.text(BOLD, 9.0, LEFT, "Item");
    for (x, label) in cols {
        let width = label.len() as f32 * 5.0;
        p.text(BOLD, 9.0, x - width, label);
    }
    p.down(6.0);
    p.rule();
    p.down(13.0);
    for l in &inv.lines {
        p.room(14.0);
        p.text(TEXT, 9.0, LEFT, &fit(&l.description, 52));
        p.figure(9.0, 330.0, &l.quantity.to_string());
        p.figure(9.0, 395.0, &money(l.unit_cents));
        p.figure(9.0, 450.0, &money(l.net_cents));
        p.figure(9.0, 490.0, &format!("{}%", l.tax_rate_bp as f64 / 100.0));
        p.figure(9.0, RIGHT, &money(l.total_cents));
        p.down(13.0);
        if l.discount_cents > 0 {
            p.text(
                TEXT,
                8.0,
                LEFT + 10.0,
                &format!("discount {}", money(l.discount_cents)),
            );
            p.down(11.0);
        }
    }
    p.room(110.0);
    p.down(2.0);
    p.rule();
    p.down(15.0);
    let mut totals = vec![
        ("Subtotal", money(inv.subtotal_cents)),
        ("Discounts", money(inv.discount_cents)),
        ("Tax", money(inv.tax_cents)),
        (
            "Total",
            format!("{} {}", money(inv.total_cents), inv.currency),
        ),
    ];
    if inv.kind == InvoiceKind::Invoice {
        totals.push(("Paid", money(inv.paid_cents)));
        totals.push((
            "Still owed",
            format!("{} {}", money(inv.balance_cents), inv.currency),
        ));
    }
    for (label, value) in totals {
        let font = if label == "Total" { BOLD } else { TEXT };
        p.text(font, 10.0, 360.0, label);
        p.figure(10.0, RIGHT, &value);
        p.down(14.0);
    }
    if !inv.payments.is_empty() {
        p.room(20.0 + 13.0 * inv.payments.len() as f32);
        p.down(10.0);
        p.text(BOLD, 10.0, LEFT, "Payments");
        p.down(13.0);
        for pay in &inv.payments {
            p.room(13.0);
            p.text(
                TEXT,
                9.0,
                LEFT,
                &format!(
                    "{} · {} · {} {}",
                    pay.paid_on,
                    pay.method.as_str(),
                    money(pay.amount_cents),
                    inv.currency
                ),
            );
            p.down(12.0);
        }
    }
    let pages = p.finish();

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let (text, bold, figures) = (Ref::new(3), Ref::new(4), Ref::new(5));
    let first = 6;
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(first + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    for (i, content) in pages.iter().enumerate() {
        let (page_id, content_id) = (page_ids[i], Ref::new(first + 2 * i as i32 + 1));
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT));
        page.parent(tree);
        page.contents(content_id);
        page.resources()
            .fonts()
            .pair(TEXT, text)
            .pair(BOLD, bold)
            .pair(FIGURES, figures);
        page.finish();
        pdf.stream(content_id, content);
    }
    for (id, name) in [
        (text, "Helvetica"),
        (bold, "Helvetica-Bold"),
        (figures, "Courier"),
    ] {
        pdf.type1_font(id)
            .base_font(Name(name.as_bytes()))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_written_in_windows_1252_and_what_it_lacks_prints_as_a_question_mark() {
        assert_eq!(winansi("Lisboa €5 ç"), b"Lisboa \x805 \xe7");
        assert_eq!(winansi("漢"), b"?");
        assert_eq!(fit("abcdef", 4), "abc…");
    }
}
