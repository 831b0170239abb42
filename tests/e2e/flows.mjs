// End-to-end flows in headless Chromium against a running service with the demo data:
//   node flows.mjs   (BASE_URL, SCREENSHOTS and CHROMIUM from the environment)
// 1. a patient on a phone-sized screen opens the demo page, consents, chats with the
//    offline assistant, picks a time, signs in inside the widget, confirms, and sees the
//    booking; 2. an admin signs in, approves a clinic request and finds it in the audit
//    log; 3. a doctor submits a note and sees the checklist and plan.
import { chromium, request } from "playwright-core";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const BASE = process.env.BASE_URL;
const SHOTS = process.env.SCREENSHOTS || "screenshots";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Reads the code mailed to an address (a helper of the test, standing in for an inbox).
const MAILBOX = process.env.MAILBOX_URL;
if (!BASE) throw new Error("BASE_URL is not set");
rmSync(SHOTS, { recursive: true, force: true });
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--no-first-run"],
});
let step = 0;
async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: join(SHOTS, `${String(step).padStart(2, "0")}-${name}.png`), fullPage: false });
}
function check(cond, message) {
  if (!cond) throw new Error("check failed: " + message);
}

const violations = [];
function watch(page, label) {
  // Generous waits: the suite runs beside the API fuzzer on two cores.
  page.setDefaultTimeout(60000);
  page.on("console", (m) => {
    if (m.type() === "error" && /Content.Security.Policy|Refused to/i.test(m.text())) violations.push(`${label}: ${m.text()}`);
  });
  page.on("pageerror", (e) => violations.push(`${label}: ${e.message}`));
}

try {
  // ---- 1. Patient: widget on the demo page, phone-sized.
  {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 }, locale: "en-GB", timezoneId: "Europe/Lisbon" });
    const page = await context.newPage();
    watch(page, "patient");
    await page.goto(BASE + "/");
    const launch = page.locator(".launch");
    await launch.waitFor();
    // The host page styles all buttons red on yellow; the widget's stays its own.
    const bg = await launch.evaluate((b) => getComputedStyle(b).backgroundColor);
    check(bg === "rgb(11, 95, 255)", "widget button keeps its style, got " + bg);
    await shot(page, "patient-demo-page");
    await launch.click();
    check((await launch.getAttribute("aria-expanded")) === "true", "launcher is expanded");
    check(!(await page.locator("button.delete").isVisible()), "nothing to delete before a conversation");
    await page.locator(".consent button").click();
    await page.locator(".msg.bot").first().waitFor();
    await shot(page, "patient-consented");
    await page.locator(".composer input").fill("I have an itchy rash on my arm and need a dermatologist");
    await page.keyboard.press("Enter");
    const firstSlot = page.locator(".choices button").first();
    await firstSlot.waitFor({ timeout: 60000 });
    check((await page.locator(".choices button").count()) > 0, "slot buttons shown");
    await shot(page, "patient-slots");
    check(await page.locator("button.delete").isVisible(), "the conversation can be deleted once it exists");
    // Typing the number of a listed time picks it, as its button does.
    await page.locator(".composer input").fill("1");
    await page.keyboard.press("Enter");
    // Anonymous: the widget asks to sign in, inside the panel.
    const login = page.locator("form.login");
    await login.waitFor({ timeout: 60000 });
    await shot(page, "patient-sign-in");
    await login.locator("input[name=email]").fill("patient@demo.clinic");
    await login.locator("input[name=password]").fill("demo-password");
    await login.locator("button[type=submit]").click();
    await page.locator(".who").filter({ hasText: "Pat Demo" }).waitFor({ timeout: 60000 });
    const confirm = page.locator(".pending button.confirm");
    await confirm.waitFor({ timeout: 60000 });
    const summary = await page.locator(".pending").innerText();
    await shot(page, "patient-proposal");
    await confirm.click();
    await page.locator(".msg.bot[data-committed=true]").waitFor({ timeout: 60000 });
    await shot(page, "patient-booked");
    // Escape closes the panel after booking (the pressed button is gone); it opens again.
    await page.keyboard.press("Escape");
    check((await launch.getAttribute("aria-expanded")) === "false", "Escape closes the panel after booking");
    await launch.click();
    await page.locator(".composer input").fill("What are my appointments?");
    await page.keyboard.press("Enter");
    await page.locator(".msg.bot").last().filter({ hasText: /Dr\./ }).waitFor({ timeout: 60000 });
    const last = await page.locator(".msg.bot").last().innerText();
    check(/Dr\./.test(last), "my appointments lists the booking: " + last);
    await shot(page, "patient-my-appointments");
    console.log("patient booked: " + summary.replace(/\s+/g, " ").slice(0, 160));
    // The patient deletes the conversation; the panel starts over with consent.
    await page.locator("button.delete").click();
    await page.locator(".consent button").waitFor();
    await shot(page, "patient-deleted");
    await context.close();
  }

  // ---- 1a. A new patient registers inside the widget (with the mailed code) and books.
  if (MAILBOX) {
    const context = await browser.newContext({ viewport: { width: 390, height: 800 }, locale: "en-GB" });
    const page = await context.newPage();
    watch(page, "new-patient");
    await page.goto(BASE + "/");
    await page.locator(".launch").click();
    await page.locator(".consent button").click();
    await page.locator(".composer input").fill("I need a dermatologist for a rash");
    await page.keyboard.press("Enter");
    await page.locator(".choices button").first().waitFor({ timeout: 60000 });
    await page.locator(".choices button").nth(1).click();
    await page.locator("form.login button.to-register").click();
    const reg = page.locator("form.register");
    await reg.locator("input[name=name]").fill("Nova Patient");
    await reg.locator("input[name=email]").fill("nova@example.org");
    await reg.locator("input[name=password]").fill("a-long-passphrase-42");
    await shot(page, "new-patient-register");
    await reg.locator("button[type=submit]").click();
    const verify = page.locator("form.verify");
    await verify.waitFor({ timeout: 60000 });
    const code = await (await fetch(MAILBOX + "/code/nova@example.org")).text();
    check(/^\d{6}$/.test(code), "a mailed code: " + code);
    await verify.locator("input[name=code]").fill(code);
    await verify.locator("button[type=submit]").click();
    await page.locator(".who").filter({ hasText: "Nova Patient" }).waitFor({ timeout: 60000 });
    await page.locator(".pending button.confirm").click({ timeout: 60000 });
    await page.locator(".msg.bot[data-committed=true]").waitFor({ timeout: 60000 });
    await shot(page, "new-patient-booked");
    await context.close();
  }

  // ---- 1b. The widget in Portuguese (the browser's language), keyboard only.
  {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 }, locale: "pt-PT" });
    const page = await context.newPage();
    watch(page, "patient-pt");
    await page.goto(BASE + "/");
    const launch = page.locator(".launch");
    await launch.waitFor();
    check((await launch.innerText()) === "Marcar consulta", "Portuguese launcher");
    await launch.focus();
    await page.keyboard.press("Enter");
    await page.locator(".consent button").waitFor();
    check((await page.locator(".consent p").innerText()).includes("112"), "Portuguese consent text");
    check(!(await page.locator("form.composer").isVisible()), "no message box before consent");
    check((await page.locator("section.panel").getAttribute("role")) === "dialog", "the panel is a dialog");
    await shot(page, "patient-portuguese");
    await page.keyboard.press("Escape");
    check((await launch.getAttribute("aria-expanded")) === "false", "Escape closes the panel");
    await context.close();
  }

  // ---- 1c. The widget on one clinic's page (data-clinic) offers only that clinic's doctors.
  {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 }, locale: "en-US", timezoneId: "America/New_York" });
    const page = await context.newPage();
    watch(page, "brooklyn");
    await page.goto(BASE + "/");
    await page.click("ul.clinics a:has-text('Brooklyn Family Health')");
    await page.locator("header h1", { hasText: "Brooklyn Family Health" }).waitFor();
    await page.locator(".launch").click();
    await page.locator(".consent button").click();
    await page.locator(".composer input").fill("My knee hurts when I climb stairs, I need a doctor");
    await page.keyboard.press("Enter");
    await page.locator(".choices button").first().waitFor({ timeout: 60000 });
    const labels = await page.locator(".choices button").allInnerTexts();
    check(labels.length > 0 && labels.every((l) => l.includes("Brooklyn Family Health")), "only Brooklyn's doctors: " + labels.join(" | "));
    const said = await page.locator(".msg.bot").last().innerText();
    check(said.includes("USD") && !said.includes("EUR"), "prices in dollars: " + said);
    await shot(page, "brooklyn-widget");
    await context.close();
  }

  // ---- 2. Admin: approve a clinic request, find it in the audit log.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page, "admin");
    await page.goto(BASE + "/admin");
    await page.locator("input[name=email]").waitFor();
    await shot(page, "admin-sign-in");
    await page.fill("input[name=email]", "admin@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(BASE + "/admin");
    await shot(page, "admin-overview");
    await page.click("text=Clinics");
    const row = page.locator("tr", { hasText: "Porto Smile Dental" }).first();
    await row.waitFor();
    await shot(page, "admin-clinic-requests");
    await row.locator("button", { hasText: "Approve" }).click();
    await page.locator("tr", { hasText: "Porto Smile Dental" }).first().filter({ hasText: "approved" }).waitFor();
    await page.goto(BASE + "/admin/audit?action=clinic.approved");
    const audit = page.locator("td.action", { hasText: "clinic.approved" });
    await audit.first().waitFor();
    check((await page.locator("#chain").innerText()).includes("intact"), "audit chain intact");
    await shot(page, "admin-audit");
    // On a phone: the console's header stays one line and the audit table scrolls in its box.
    await page.setViewportSize({ width: 360, height: 740 });
    await page.goto(BASE + "/admin/audit");
    const headerHeight = await page.locator("header.top").evaluate((e) => e.getBoundingClientRect().height);
    check(headerHeight < 70, "the console's header is one line on a phone: " + headerHeight);
    const pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
    check(pageWidth <= 360, "the audit page fits a phone: " + pageWidth);
    await shot(page, "admin-audit-phone");
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(BASE + "/admin/orchestration");
    await page.locator("figure.chart").first().waitFor();
    await shot(page, "admin-orchestration");
    await page.goto(BASE + "/admin/reports");
    await page.locator("figure.chart").first().waitFor();
    await shot(page, "admin-reports");
    await context.close();
  }

  // ---- 3. Doctor: a note becomes a checklist and a plan.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page, "doctor");
    await page.goto(BASE + "/doctor");
    await page.fill("input[name=email]", "doctor@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(BASE + "/doctor");
    await shot(page, "doctor-today");
    await page.click("ul.patients a:has-text('Pat Demo')");
    const note = page.locator("section.card", { has: page.locator("h2", { hasText: "New note" }) }).locator("textarea[name=text]");
    await note.waitFor();
    await note.fill("Take ibuprofen 400 mg every 8 hours for 5 days. Buy a cold pack. Book a follow-up in 2 weeks.");
    await page.click("button:has-text('Save and extract the plan')");
    const item = page.locator("table.plan-items td", { hasText: "Take ibuprofen 400 mg" });
    await item.first().waitFor();
    check((await page.locator("ul.checklist").first().innerText()).includes("Buy a cold pack"), "checklist shows the task");
    await shot(page, "doctor-plan");
    // The chart: the demo patient's visits, and the high LDL of the lipid panel marked.
    check((await page.locator("section.profile").innerText()).includes("penicillin"), "allergies on the chart");
    await page.locator("section.labs tr.flag-high", { hasText: "LDL" }).first().waitFor();
    check((await page.locator("article.record").count()) >= 2, "visit records listed");
    // A new visit record with a prescription; a transcript pasted on it and the record's
    // fields drafted from it (shown in its form, not saved); a PDF attached; then signed.
    const fresh = page.locator("section.card", { has: page.locator("h2", { hasText: "New visit record" }) });
    await fresh.locator("input[name=chief_complaint]").fill("Sore throat for three days");
    await fresh.locator("input[name='vitals.temperature_c']").fill("38.4");
    await fresh.locator("input[name='diagnosis.0']").fill("Acute pharyngitis");
    await fresh.locator("input[name='icd10.0']").fill("J02.9");
    await fresh.locator("input[name='medicine.0']").fill("ibuprofen");
    await fresh.locator("input[name='dose.0']").fill("400 mg");
    await fresh.locator("input[name='times_per_day.0']").fill("3");
    await fresh.locator("input[name='duration_days.0']").fill("5");
    await fresh.locator("input[name='quantity.0']").fill("15");
    await fresh.locator("button:has-text('Save the draft')").click();
    const draft = page.locator("article.record[data-status=draft]", { hasText: "Sore throat for three days" });
    await draft.waitFor();
    check((await draft.locator("ul.prescriptions").innerText()).includes("ibuprofen 400 mg, 3× a day for 5 days"), "the prescription is on the draft");
    await draft.locator("form.paste-transcript textarea").fill("Patient: My throat has been sore for three days.\nDoctor: Your temperature is 38.4.\nDoctor: Gargle with salt water. Come back in one week.");
    await draft.locator("button:has-text('Keep the transcript')").click();
    await draft.locator("details.transcript").waitFor();
    await draft.locator("button:has-text('Draft the record from the transcript')").click();
    const drafted = page.locator("details.edit-record[open]", { hasText: "Drafted by the assistant" });
    await drafted.waitFor();
    check((await drafted.locator("input[name=follow_up_days]").inputValue()) === "7", "the follow-up drafted from the transcript");
    await drafted.scrollIntoViewIfNeeded();
    await shot(page, "doctor-drafted-record");
    await draft.locator("form.upload-file input[type=file]").setInputFiles({
      name: "throat-swab.pdf",
      mimeType: "application/pdf",
      buffer: Buffer.from("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"),
    });
    await draft.locator("form.upload-file button").click();
    await draft.locator("p.file a", { hasText: "throat-swab.pdf" }).waitFor();
    await draft.locator("button:has-text('Sign')").click();
    const signed = page.locator("article.record[data-status=signed]", { hasText: "Sore throat for three days" });
    await signed.waitFor();
    await signed.locator("select[name=code]").selectOption("4548-4");
    await signed.locator("button:has-text('Order')").click();
    await page.locator("article.lab[data-status=ordered]", { hasText: "Hemoglobin A1c" }).first().waitFor();
    await shot(page, "doctor-chart");
    await context.close();
  }
  // ---- 4. Patient portal: records, lab results (the high LDL marked), prescriptions, QR.
  {
    const context = await browser.newContext({ viewport: { width: 360, height: 800 } });
    const page = await context.newPage();
    watch(page, "portal");
    await page.goto(BASE + "/admin/login");
    await page.fill("input[name=email]", "patient@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(BASE + "/me");
    await page.locator("figure.qr-code svg").waitFor();
    await page.locator("section.labs tr.flag-high", { hasText: "LDL" }).first().waitFor();
    check((await page.locator("ul.prescriptions").innerText()).includes("cetirizine"), "prescriptions listed");
    check((await page.locator("article.record").count()) >= 2, "signed visits listed");
    check((await page.locator("#appointments article.visit").count()) >= 1, "the visit booked in the widget is listed");
    check((await page.locator("#care ul.plan-items").first().innerText()).includes("ibuprofen"), "the care plan from the visit signed in the chart");
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 360, "nothing wider than a 360-pixel screen: " + wide);
    await shot(page, "patient-portal");
    // The patient adds an allergy to their profile.
    await page.locator("details.edit-profile summary").click();
    const allergies = page.locator("textarea[name=allergies]");
    await allergies.fill((await allergies.inputValue()) + "\nlatex");
    await page.click("button:has-text('Save my profile')");
    await page.locator("p.allergies", { hasText: "latex" }).waitFor();
    await page.locator("section.profile").scrollIntoViewIfNeeded();
    await shot(page, "patient-profile-saved");
    await context.close();
  }
  // ---- 5. Front desk: find the patient, hold a time while talking, book it, check in.
  let bookedDoctor = "";
  let invoiceNumber = "";
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page, "desk");
    await page.goto(BASE + "/admin/login");
    await page.fill("input[name=email]", "desk@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/desk$/);
    await page.fill("input[name=q]", "Pat Demo");
    await page.click("button:has-text('Search')");
    const found = page.locator("tr[data-patient]", { hasText: "Pat Demo" });
    await found.waitFor();
    await shot(page, "desk-search");
    await found.locator("a", { hasText: "Book" }).click();
    await page.waitForURL(/\/desk\/book/);
    // The first day with a free time, from tomorrow on.
    for (let i = 0; i < 7 && (await page.locator("ul.times button").count()) === 0; i++) {
      await page.click("a:has-text('Day after')");
      await page.waitForLoadState();
    }
    await page.locator("ul.times button").first().click();
    const held = page.locator("#held");
    await held.waitFor();
    bookedDoctor = (await held.locator("h2").innerText()).split(" with ")[1] || "";
    check(bookedDoctor.startsWith("Dr."), "the held time names its doctor: " + bookedDoctor);
    await shot(page, "desk-held");
    await held.locator("input[name=reason]").fill("Phoned: follow-up");
    await held.locator("button", { hasText: "Book it" }).click();
    await page.locator("p.flash", { hasText: "Booked." }).waitFor();
    const row = page.locator("tr[data-appointment]", { hasText: "Phoned: follow-up" });
    await row.waitFor();
    await shot(page, "desk-booked");
    await row.locator("button", { hasText: "Check in" }).click();
    await page.locator("tr[data-appointment]", { hasText: "Phoned: follow-up" }).locator("td.status", { hasText: "checked in" }).waitFor();
    await shot(page, "desk-checked-in");
    // The visit is invoiced: a draft priced from the list, issued, partly paid.
    await page.locator("tr[data-appointment]", { hasText: "Phoned: follow-up" }).locator("a", { hasText: "Invoice" }).click();
    await page.locator("#new-invoice").waitFor();
    await page.click("button:has-text('Make the draft')");
    await page.locator("#invoice[data-status=draft]").waitFor();
    check((await page.locator("#invoice table.lines").innerText()).includes("Consultation"), "the consultation is a line");
    await page.click("button:has-text('Issue it')");
    await page.locator("#invoice[data-status=issued]").waitFor();
    invoiceNumber = (await page.locator("#invoice h1").innerText()).replace(/^Invoice /, "").trim();
    check(/^[A-Z0-9]{3}-\d{4}-\d{6}$/.test(invoiceNumber), "issued with a number: " + invoiceNumber);
    await shot(page, "desk-invoice-issued");
    await page.fill("#actions input[name=amount]", "10.00");
    await page.click("button:has-text('Record the payment')");
    await page.locator("#invoice li", { hasText: "10.00" }).waitFor();
    const owed = await page.locator("#invoice td.balance").innerText();
    check(owed !== "0.00" && owed !== "", "part of it still owed: " + owed);
    await shot(page, "desk-invoice-paid-in-part");
    await context.close();
  }
  // ---- 5b. The patient sees that invoice, with what is owed, and opens it.
  {
    const context = await browser.newContext({ viewport: { width: 360, height: 800 } });
    const page = await context.newPage();
    watch(page, "portal-invoice");
    await page.goto(BASE + "/admin/login");
    await page.fill("input[name=email]", "patient@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(BASE + "/me");
    const mine = page.locator("#invoices li", { hasText: invoiceNumber });
    await mine.waitFor();
    check((await mine.innerText()).includes("owed"), "the patient sees what is owed");
    await mine.locator("a").click();
    await page.locator("#invoice[data-status=issued]").waitFor();
    check((await page.locator("#actions").count()) === 0, "the patient cannot take payments or void");
    await shot(page, "patient-invoice");
    await context.close();
  }
  // ---- 6. Clinic admin: shifts and gaps, setup, a schedule change shown before saving.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page, "setup");
    await page.goto(BASE + "/admin/login");
    await page.fill("input[name=email]", "lisbon-admin@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(BASE + "/admin");
    await page.click("nav a:has-text('Shifts')");
    await page.locator("table.coverage").waitFor();
    check((await page.locator("table.coverage span.gap", { hasText: "no front desk" }).count()) > 0, "the afternoons' front-desk gap is shown");
    check((await page.locator("tr[data-shift]").count()) > 5, "the demo's shifts are listed");
    await shot(page, "admin-shifts");
    await page.click("nav a:has-text('Clinic setup')");
    await page.locator("#prices").waitFor();
    await shot(page, "admin-clinic-setup");
    await page.click(`#doctors a:has-text('${bookedDoctor}')`);
    await page.locator("#schedule").waitFor();
    for (const input of await page.locator("#schedule input[type=time]").all()) await input.fill("");
    await page.locator("select[name='weekday.0']").selectOption("sun");
    await page.fill("input[name='start.0']", "10:00");
    await page.fill("input[name='end.0']", "11:00");
    await page.click("button:has-text('Save the schedule')");
    const pending = page.locator("#pending");
    await pending.waitFor();
    check((await pending.locator("ul.conflicts li").count()) >= 1, "the desk's booking is shown before saving");
    await shot(page, "admin-schedule-conflicts");
    await pending.locator("a", { hasText: "Do not save" }).click();
    await page.locator("#schedule").waitFor();
    check((await page.locator("#pending").count()) === 0, "nothing was saved");
    await context.close();
  }
  // ---- 7. Pharmacist: the alerts, then an over-the-counter sale from the oldest batch.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page, "pharmacy");
    await page.goto(BASE + "/admin/login");
    await page.fill("input[name=email]", "pharmacy@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/pharmacy$/);
    await page.locator("#alerts li[data-kind=low_stock]", { hasText: "Salbutamol" }).waitFor();
    await page.locator("#alerts li[data-kind=expiring]", { hasText: "IBU-2612" }).waitFor();
    await shot(page, "pharmacy-alerts");
    const before = await page.locator("tr[data-medicine]", { hasText: "Ibuprofen" }).locator("td.on-hand").innerText();
    const sell = page.locator("#dispense form").last();
    const ibuprofen = await sell.locator("option", { hasText: "Ibuprofen" }).getAttribute("value");
    await sell.locator("select[name=medicine]").selectOption(ibuprofen);
    await sell.locator("input[name=quantity]").fill("2");
    await sell.locator("button", { hasText: "Sell" }).click();
    await page.locator("p.flash", { hasText: "Sold." }).waitFor();
    const after = await page.locator("tr[data-medicine]", { hasText: "Ibuprofen" }).locator("td.on-hand").innerText();
    check(parseInt(after) === parseInt(before) - 2, `two tablets fewer: ${before} → ${after}`);
    await shot(page, "pharmacy-sold");
    await context.close();
  }
  // ---- 8. The front desk without a network: two check-ins and a booking made offline are
  //         applied when it is back; a time taken online meanwhile is a conflict to resolve.
  {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    watch(page, "offline-desk");
    await page.goto(BASE + "/admin/login");
    await page.fill("input[name=email]", "desk@demo.clinic");
    await page.fill("input[name=password]", "demo-password");
    await page.click("button[type=submit]");
    await page.waitForURL(/\/desk$/);
    await page.click("a:has-text('Offline-ready desk')");
    await page.waitForURL(/\/desk\/offline/);
    // Four days ahead, so a weekend still has free times to book.
    await page.goto(page.url() + "&days=4");
    await page.locator("#desk-app[data-ready=yes]").waitFor();
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
    await page.waitForFunction(() => navigator.serviceWorker.controller !== null);
    const status = page.locator("#net-status");
    // Waits until the service has answered `n` commands since the page opened and nothing
    // waits any more.
    const synced = (n) =>
      page.waitForFunction((n) => {
        const app = document.getElementById("desk-app");
        const s = document.getElementById("net-status");
        return Number(app.dataset.answered || 0) >= n && s.dataset.state === "online" && s.dataset.waiting === "0" && !document.querySelector("#visits tr.waiting");
      }, n);
    // Books the patient found by `who` at the first free time of any doctor on any day;
    // returns the day's tab text and the slot's id.
    async function bookFirstFree() {
      const tabs = page.locator("#days a");
      for (let d = 0; d < (await tabs.count()); d++) {
        await tabs.nth(d).click();
        const doctors = await page.locator("#book-doctor option").evaluateAll((os) => os.map((o) => o.value));
        for (const doctor of doctors) {
          await page.locator("#book-doctor").selectOption(doctor);
          const free = page.locator("#book-times button");
          if ((await free.count()) > 0) {
            const slot = await free.first().getAttribute("data-slot");
            const tab = await tabs.nth(d).innerText();
            await free.first().click();
            return { tab, slot };
          }
        }
      }
      throw new Error("check failed: no free time in the snapshot's days");
    }
    async function bookFor(name) {
      await page.fill("#patient-q", name);
      await page.locator("#patient-results li", { hasText: name }).first().locator("button", { hasText: "Book" }).click();
      return bookFirstFree();
    }
    // Online: two visits to check in later, one for a walk-in registered here.
    const first = await bookFor("Pat Demo");
    await synced(1);
    await page.locator("#walk-in summary").click();
    await page.fill("#walk-in-form input[name=name]", "Wanda Walkin");
    await page.fill("#walk-in-form input[name=phone]", "+351912345000");
    await page.click("button:has-text('Register and book')");
    const second = await bookFirstFree();
    await synced(3);

    // Offline: the page reopens from the device, two check-ins and a booking wait.
    await context.setOffline(true);
    await page.locator("#net-status[data-state=offline]").waitFor();
    await page.reload();
    await page.locator("#desk-app[data-ready=yes]").waitFor();
    check((await status.getAttribute("data-state")) === "offline", "the reopened page knows it is offline");
    for (const [booked, name] of [[first, "Pat Demo"], [second, "Wanda Walkin"]]) {
      await page.locator("#days a", { hasText: booked.tab }).click();
      const row = page.locator("tr[data-visit][data-status=booked]", { hasText: name }).first();
      await row.locator("button", { hasText: "Check in" }).click();
    }
    await page.locator("tr.waiting[data-status=checked_in]").nth(1).waitFor();
    const third = await bookFor("Wanda Walkin");
    await page.locator("#net-status[data-waiting='3']").waitFor();
    check((await status.innerText()).startsWith("Offline — 3 changes waiting"), await status.innerText());
    check((await page.locator("td.status", { hasText: "provisional" }).count()) === 1, "the offline booking is provisional");
    await shot(page, "offline-desk-waiting");
    // Back online: applied, nothing waiting, the booking now a real visit.
    await context.setOffline(false);
    await synced(3);
    await page.locator("#days a", { hasText: third.tab }).click();
    check((await page.locator("tr.waiting").count()) === 0, "nothing waits any more");
    check((await page.locator("td.status", { hasText: "provisional" }).count()) === 0, "the provisional visit is a visit");
    await page.locator("#days a", { hasText: first.tab }).click();
    check((await page.locator("tr[data-status=checked_in]", { hasText: "Pat Demo" }).count()) >= 1, "Pat Demo checked in");
    await shot(page, "offline-desk-synced");

    // Offline again: a time booked here is taken online meanwhile by the patient.
    await context.setOffline(true);
    await page.locator("#net-status[data-state=offline]").waitFor();
    const taken = await bookFor("Pat Demo");
    const api = await request.newContext({ baseURL: BASE });
    const login = await api.post("/api/v1/auth/login", { data: { email: "patient@demo.clinic", password: "demo-password" } });
    const headers = { authorization: "Bearer " + (await login.json()).access_token };
    check((await api.post(`/api/v1/slots/${taken.slot}/hold`, { headers, data: {} })).status() === 201, "held online");
    check((await api.post(`/api/v1/slots/${taken.slot}/confirm`, { headers, data: {} })).status() === 201, "booked online");
    await api.dispose();
    await context.setOffline(false);
    const conflict = page.locator("#conflicts li[data-code=slot_taken]");
    await conflict.waitFor();
    check((await conflict.locator("button.primary").count()) >= 1, "other free times are offered");
    await shot(page, "offline-desk-conflict");
    await conflict.locator("button.primary").first().click();
    await page.locator("#conflicts").waitFor({ state: "hidden" });
    await synced(5);
    check((await page.locator("tr.waiting").count()) === 0, "the alternative was booked");
    await context.close();
  }
  check(violations.length === 0, "no CSP violations or page errors: " + violations.join(" | "));
  console.log(`ok: ${step} screenshots in ${SHOTS}`);
} finally {
  await browser.close();
}
