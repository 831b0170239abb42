//! An invoice as a one-page (or longer) A4 PDF: the clinic (name, address, contacts), the
//! number and dates, whom it is billed to, the lines with their tax, the totals and the
//! payments. Written with `pdf-writer` in the PDF standard fonts (Helvetica for text,
//! Courier for amounts, so figures line up), encoded as Windows-1252, which covers the
//! Latin scripts the clinics write in; anything else prints as `?`. The clinic's logo
//! heads it when it is a JPEG (embedded as it is) or a PNG (its pixels compressed, its
//! transparency kept); a WebP logo is left out.

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

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
const LOGO: Name = Name(b"Im1");

/// The logo's largest size on the page, in points.
const LOGO_WIDTH: f32 = 140.0;
const LOGO_HEIGHT: f32 = 50.0;

/// A logo as the PDF holds it.
pub struct Logo {
    width: u32,
    height: u32,
    /// The image's samples as its filter has them.
    samples: Vec<u8>,
    filter: Filter,
    /// 1 (gray), 3 (RGB) or 4 (CMYK).
    components: u8,
    /// A PNG's alpha channel, compressed.
    alpha: Option<Vec<u8>>,
}

impl Logo {
    /// A JPEG or PNG logo ready to embed; `None` for another type or a file that does not
    /// read (the invoice is printed without it).
    pub fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xFF, 0xD8]) {
            Self::jpeg(bytes)
        } else if bytes.starts_with(b"\x89PNG") {
            Self::png(bytes)
        } else {
            None
        }
    }

    fn jpeg(bytes: &[u8]) -> Option<Self> {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder.read_info().ok()?;
        let info = decoder.info()?;
        let components = match info.pixel_format {
            jpeg_decoder::PixelFormat::L8 => 1,
            jpeg_decoder::PixelFormat::RGB24 => 3,
            jpeg_decoder::PixelFormat::CMYK32 => 4,
            jpeg_decoder::PixelFormat::L16 => return None,
        };
        Some(Self {
            width: u32::from(info.width),
            height: u32::from(info.height),
            samples: bytes.to_vec(),
            filter: Filter::DctDecode,
            components,
            alpha: None,
        })
    }

    fn png(bytes: &[u8]) -> Option<Self> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().ok()?;
        let mut buf = vec![0; reader.output_buffer_size()?];
        let frame = reader.next_frame(&mut buf).ok()?;
        let data = buf.get(..frame.buffer_size())?;
        let (colour, has_alpha) = match frame.color_type {
            png::ColorType::Grayscale => (1, false),
            png::ColorType::GrayscaleAlpha => (1, true),
            png::ColorType::Rgb => (3, false),
            png::ColorType::Rgba => (3, true),
            png::ColorType::Indexed => return None,
        };
        let (samples, alpha) = if has_alpha {
            let stride = colour + 1;
            let mut samples = Vec::with_capacity(data.len() / stride * colour);
            let mut alpha = Vec::with_capacity(data.len() / stride);
            for px in data.chunks_exact(stride) {
                samples.extend_from_slice(&px[..colour]);
                alpha.push(px[colour]);
            }
            (samples, Some(alpha))
        } else {
            (data.to_vec(), None)
        };
        Some(Self {
            width: frame.width,
            height: frame.height,
            samples: miniz_oxide::deflate::compress_to_vec_zlib(&samples, 6),
            filter: Filter::FlateDecode,
            components: colour as u8,
            alpha: alpha.map(|a| miniz_oxide::deflate::compress_to_vec_zlib(&a, 6)),
        })
    }

    /// Its size on the page: within the box, its proportions kept.
    fn size(&self) -> (f32, f32) {
        let (w, h) = (self.width.max(1) as f32, self.height.max(1) as f32);
        let scale = (LOGO_WIDTH / w).min(LOGO_HEIGHT / h);
        (w * scale, h * scale)
    }

    fn write(&self, pdf: &mut Pdf, id: Ref, mask: Ref) {
        let mut image = pdf.image_xobject(id, &self.samples);
        image.filter(self.filter);
        image.width(self.width as i32);
        image.height(self.height as i32);
        let space = image.color_space();
        match self.components {
            1 => space.device_gray(),
            4 => space.device_cmyk(),
            _ => space.device_rgb(),
        }
        image.bits_per_component(8);
        if self.components == 4 {
            // Adobe's JPEGs store CMYK inverted.
            image.decode([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        }
        if self.alpha.is_some() {
            image.s_mask(mask);
        }
        image.finish();
        if let Some(alpha) = &self.alpha {
            let mut soft = pdf.image_xobject(mask, alpha);
            soft.filter(Filter::FlateDecode);
            soft.width(self.width as i32);
            soft.height(self.height as i32);
            soft.color_space().device_gray();
            soft.bits_per_component(8);
            soft.finish();
        }
    }
}

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
pub fn render(inv: &Invoice, clinic: &Clinic, logo: Option<&Logo>) -> Vec<u8> {
    let mut p = Pages::new();
    if let Some(logo) = logo {
        let (w, h) = logo.size();
        p.page
            .save_state()
            .transform([w, 0.0, 0.0, h, LEFT, p.y + 12.0 - h])
            .x_object(LOGO)
            .restore_state();
        p.down(h + 8.0);
    }
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
    let (image, mask) = (Ref::new(6), Ref::new(7));
    let first = 8;
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
        let mut resources = page.resources();
        resources
            .fonts()
            .pair(TEXT, text)
            .pair(BOLD, bold)
            .pair(FIGURES, figures);
        if logo.is_some() {
            resources.x_objects().pair(LOGO, image);
        }
        resources.finish();
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
    if let Some(logo) = logo {
        logo.write(&mut pdf, image, mask);
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

    #[test]
    fn a_png_logo_keeps_its_transparency_and_fits_the_box() {
        let mut bytes = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut bytes, 4, 2);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().unwrap();
            writer.write_image_data(&[200u8; 4 * 2 * 4]).unwrap();
        }
        let logo = Logo::read(&bytes).unwrap();
        assert_eq!((logo.width, logo.height, logo.components), (4, 2, 3));
        assert!(logo.alpha.is_some());
        assert_eq!(logo.size(), (100.0, 50.0));
        assert!(Logo::read(b"RIFF....WEBP").is_none());
        // A file that says PNG but does not decode is left out, not an error.
        let mut broken = bytes.clone();
        let last = broken.len() - 20;
        broken[last] ^= 0xff;
        assert!(Logo::read(&broken).is_none());
        // The smallest JPEG (1×1, gray) is embedded as it is.
        use base64::Engine;
        let jpeg = base64::engine::general_purpose::STANDARD
            .decode("/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=")
            .unwrap();
        let logo = Logo::read(&jpeg).unwrap();
        assert_eq!((logo.width, logo.height, logo.components), (1, 1, 1));
        assert_eq!(logo.samples, jpeg);
        assert!(Logo::read(b"\x89PNG broken").is_none());
    }
}
