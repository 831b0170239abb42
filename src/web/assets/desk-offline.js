// The offline-ready front desk. It keeps a snapshot of today's and tomorrow's visits, free
// times and recent patients in IndexedDB (refreshed while online), and what the desk does
// as a queue of commands, each with its own UUIDv7 and the time it was made. While online
// the queue is sent at once; offline it waits, and is sent when the network is back. The
// server answers each command: applied, already applied, conflict (with other free times)
// or refused; conflicts and refusals are listed for the desk to resolve.
"use strict";
(() => {
  const root = document.getElementById("desk-app");
  if (!root) return;
  const clinic = root.dataset.clinic;
  const csrf = root.dataset.csrf;
  const $ = (selector) => root.querySelector(selector);
  // Today and tomorrow, or more days ahead (`?days=`, up to 7).
  const daysAhead = Math.min(7, Math.max(1, parseInt(new URLSearchParams(location.search).get("days"), 10) || 2));

  // ---- Storage ------------------------------------------------------------------------
  const opened = new Promise((resolve, reject) => {
    const request = indexedDB.open("clinic-desk", 1);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore("snapshots");
      db.createObjectStore("queue", { keyPath: "id" });
      db.createObjectStore("conflicts", { keyPath: "id" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });

  async function store(name, mode, work) {
    const db = await opened;
    return new Promise((resolve, reject) => {
      const tx = db.transaction(name, mode);
      const request = work(tx.objectStore(name));
      tx.oncomplete = () => resolve(request ? request.result : undefined);
      tx.onerror = () => reject(tx.error);
    });
  }
  const read = (name, key) => store(name, "readonly", (s) => s.get(key));
  const readAll = (name) => store(name, "readonly", (s) => s.getAll());
  const write = (name, value, key) => store(name, "readwrite", (s) => (key === undefined ? s.put(value) : s.put(value, key)));
  const remove = (name, key) => store(name, "readwrite", (s) => s.delete(key));

  // ---- Ids and times ------------------------------------------------------------------
  let lastMade = 0;
  function madeNow() {
    // Strictly increasing, so the server applies commands in the order they were made.
    lastMade = Math.max(Date.now(), lastMade + 1);
    return lastMade;
  }
  function uuidv7(ms) {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    let t = ms;
    for (let i = 5; i >= 0; i--) {
      b[i] = t % 256;
      t = Math.floor(t / 256);
    }
    b[6] = (b[6] & 0x0f) | 0x70;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ---- State --------------------------------------------------------------------------
  let snapshot = null; // { generated_at, days, doctors, appointments: {id: visit}, slots, patients: {id: patient} }
  let queue = [];
  let conflicts = [];
  let day = null;
  let booking = null; // the patient being booked for
  let sending = false;
  let problem = "";
  let answered = 0; // commands the service answered since the page opened

  const doctorName = (id) => (snapshot.doctors.find((d) => d.id === id) || { name: "" }).name;
  const slotOf = (id) => snapshot.slots.find((s) => s.id === id);
  const patientName = (id) => (snapshot.patients[id] || { name: "" }).name;

  function merge(fresh) {
    const byId = (list) => Object.fromEntries(list.map((x) => [x.id, x]));
    if (fresh.full || !snapshot) {
      snapshot = { ...fresh, appointments: byId(fresh.appointments), patients: byId(fresh.patients) };
    } else {
      snapshot = {
        ...snapshot,
        generated_at: fresh.generated_at,
        days: fresh.days,
        doctors: fresh.doctors,
        slots: fresh.slots,
        appointments: { ...snapshot.appointments, ...byId(fresh.appointments) },
        patients: { ...snapshot.patients, ...byId(fresh.patients) },
      };
      // Visits of days gone by are dropped.
      for (const [id, v] of Object.entries(snapshot.appointments)) {
        if (!fresh.days.includes(v.local_date)) delete snapshot.appointments[id];
      }
    }
    if (!snapshot.days.includes(day)) day = snapshot.days[0];
  }

  // The snapshot as the desk sees it: with the waiting commands applied.
  function view() {
    const visits = Object.values(snapshot.appointments).map((v) => ({ ...v, waiting: false, provisional: false }));
    const patients = { ...snapshot.patients };
    const taken = new Set();
    for (const c of queue) {
      if (c.kind === "walk_in") {
        patients[c.patient_id] = { id: c.patient_id, name: c.name, phone: c.phone || "", email: c.email || "" };
      } else if (c.kind === "book") {
        const slot = slotOf(c.slot_id);
        taken.add(c.slot_id);
        if (slot) {
          visits.push({
            id: "waiting-" + c.id,
            doctor_id: slot.doctor_id,
            patient_id: c.patient_id,
            patient_name: (patients[c.patient_id] || { name: "" }).name,
            local_date: slot.local_date,
            local_time: slot.local_time,
            status: "booked",
            waiting: true,
            provisional: true,
          });
        }
      } else {
        const v = visits.find((x) => x.id === c.appointment_id);
        if (v) {
          v.status = { check_in: "checked_in", complete: "completed", no_show: "no_show", cancel: "cancelled" }[c.kind];
          v.waiting = true;
        }
      }
    }
    visits.sort((a, b) => (a.local_date + a.local_time).localeCompare(b.local_date + b.local_time));
    return { visits, patients, taken };
  }

  // ---- Drawing ------------------------------------------------------------------------
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "onclick") node.addEventListener("click", v);
      else if (v !== undefined && v !== null) node.setAttribute(k, v);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function drawStatus() {
    const status = $("#net-status");
    const waiting = queue.length;
    const online = navigator.onLine;
    status.dataset.state = !online ? "offline" : sending ? "syncing" : "online";
    status.dataset.waiting = String(waiting);
    const changes = `${waiting} change${waiting === 1 ? "" : "s"} waiting`;
    if (!online) status.textContent = `Offline — ${changes}. They are sent when the network is back.`;
    else if (problem) status.textContent = `${problem} — ${changes}.`;
    else if (waiting) status.textContent = `Online — sending ${changes}…`;
    else status.textContent = `Online — up to date${snapshot ? " (" + new Date(snapshot.generated_at).toLocaleTimeString() + ")" : ""}.`;
  }

  function drawDays() {
    const nav = $("#days");
    const tabs = snapshot.days.map((d, i) =>
      el("a", { href: "#", "aria-current": d === day ? "page" : null, onclick: (e) => { e.preventDefault(); day = d; draw(); } },
        (i === 0 ? "Today " : i === 1 ? "Tomorrow " : "") + d));
    nav.replaceChildren(...tabs.flatMap((a, i) => (i ? [" · ", a] : [a])));
  }

  function drawVisits(v) {
    const rows = v.visits.filter((x) => x.local_date === day).map((x) => {
      const actions = el("td");
      const act = (label, kind) => el("button", { type: "button", onclick: () => command(kind, { appointment_id: x.id }) }, label);
      if (!x.provisional) {
        if (x.status === "booked") actions.append(act("Check in", "check_in"));
        if (x.status === "booked" || x.status === "checked_in") actions.append(act("Completed", "complete"));
        if (x.status === "booked" && new Date(x.starts_at) <= new Date()) actions.append(act("No-show", "no_show"));
        if (x.status === "booked") actions.append(act("Cancel", "cancel"));
      }
      const note = x.provisional ? " · provisional, waiting to sync" : x.waiting ? " · waiting to sync" : "";
      return el("tr", { "data-visit": x.id, "data-status": x.status, class: x.waiting ? "waiting" : null },
        el("td", {}, x.local_time), el("td", {}, doctorName(x.doctor_id)), el("td", {}, x.patient_name),
        el("td", { class: "status" }, x.status.replace("_", " ") + note), actions);
    });
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5" }, "No visits.")));
    $("#visits tbody").replaceChildren(...rows);
  }

  function drawPatients(v) {
    const q = $("#patient-q").value.trim().toLowerCase();
    const found = q.length < 2 ? [] : Object.values(v.patients).filter((p) =>
      [p.name, p.email, p.phone].some((f) => (f || "").toLowerCase().includes(q))).slice(0, 20);
    $("#patient-results").replaceChildren(...found.map((p) =>
      el("li", { "data-patient": p.id }, `${p.name} `, el("small", {}, [p.phone, p.email].filter(Boolean).join(" · ")), " ",
        el("button", { type: "button", onclick: () => { booking = p; draw(); } }, "Book"))));
  }

  function drawBooking(v) {
    const section = $("#book");
    section.hidden = !booking;
    if (!booking) return;
    section.querySelector(".who").textContent = booking.name;
    const select = $("#book-doctor");
    if (select.options.length !== snapshot.doctors.length) {
      select.replaceChildren(...snapshot.doctors.map((d) => el("option", { value: d.id }, d.name)));
    }
    const free = snapshot.slots.filter((s) => s.free && !v.taken.has(s.id) && s.doctor_id === select.value && s.local_date === day);
    const times = free.map((s) => el("li", {}, el("button", { type: "button", "data-slot": s.id, onclick: () => book(s) }, s.local_time)));
    if (!times.length) times.push(el("li", {}, "No free times this day."));
    $("#book-times").replaceChildren(...times);
  }

  function describe(c, patients) {
    const slot = c.slot_id && slotOf(c.slot_id);
    const who = (patients[c.patient_id] || {}).name || "";
    switch (c.kind) {
      case "book": return `Booking ${who} ${slot ? "at " + slot.local_time + " on " + slot.local_date + " with " + doctorName(slot.doctor_id) : ""}`;
      case "walk_in": return `Registering ${c.name}`;
      default: {
        const v = snapshot.appointments[c.appointment_id];
        const what = { check_in: "Check-in", complete: "Completed", no_show: "No-show", cancel: "Cancelling" }[c.kind];
        return `${what} of ${v ? v.patient_name + " at " + v.local_time : "a visit"}`;
      }
    }
  }

  function drawConflicts(v) {
    const section = $("#conflicts");
    section.hidden = conflicts.length === 0;
    section.querySelector("ul").replaceChildren(...conflicts.map((k) => {
      const li = el("li", { "data-conflict": k.id, "data-code": k.answer.code || "" },
        el("strong", {}, describe(k.command, v.patients)), `: ${k.answer.reason || k.answer.code} `);
      for (const alt of k.answer.alternatives || []) {
        li.append(el("button", { type: "button", class: "primary", "data-slot": alt.slot_id, onclick: () => resolve(k, alt) },
          `Book ${alt.local_time} on ${alt.local_date} instead`), " ");
      }
      li.append(el("button", { type: "button", onclick: () => drop(k) }, "Drop"));
      return li;
    }));
  }

  function draw() {
    drawStatus();
    if (!snapshot) return;
    const v = view();
    drawDays();
    drawVisits(v);
    drawPatients(v);
    drawBooking(v);
    drawConflicts(v);
    root.dataset.ready = "yes";
  }

  // ---- What the desk does -------------------------------------------------------------
  async function command(kind, fields) {
    const made = madeNow();
    const c = { id: uuidv7(made), made_at: new Date(made).toISOString(), kind, ...fields };
    queue.push(c);
    await write("queue", { ...c, clinic_of: clinic });
    draw();
    send();
    return c;
  }

  function book(slot) {
    command("book", { slot_id: slot.id, patient_id: booking.id, reason: $("#book-reason").value });
    booking = null;
    $("#book-reason").value = "";
  }

  async function resolve(k, alt) {
    await drop(k);
    if (!slotOf(alt.slot_id)) snapshot.slots.push({ id: alt.slot_id, doctor_id: slotOf(k.command.slot_id)?.doctor_id, local_date: alt.local_date, local_time: alt.local_time, starts_at: alt.starts_at, free: true });
    await command("book", { slot_id: alt.slot_id, patient_id: k.command.patient_id, reason: k.command.reason || "" });
  }

  async function drop(k) {
    conflicts = conflicts.filter((x) => x.id !== k.id);
    await remove("conflicts", k.id);
    draw();
  }

  // ---- Talking to the service ---------------------------------------------------------
  async function refresh() {
    if (!navigator.onLine) return;
    const since = snapshot && snapshot.clinic_id === clinic ? "&since=" + encodeURIComponent(snapshot.generated_at) : "";
    try {
      const response = await fetch(`/desk/sync/snapshot?clinic=${clinic}&days=${daysAhead}${since}`, { credentials: "same-origin", redirect: "error" });
      if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
      merge(await response.json());
      await write("snapshots", snapshot, clinic);
      problem = "";
    } catch (e) {
      if (navigator.onLine) problem = "Could not reach the service (" + e.message + ")";
    }
    draw();
  }

  async function send() {
    if (sending || !navigator.onLine || queue.length === 0) return;
    sending = true;
    drawStatus();
    const batch = queue.slice();
    try {
      const response = await fetch("/desk/sync", {
        method: "POST",
        credentials: "same-origin",
        redirect: "error",
        headers: { "content-type": "application/json", "x-csrf-token": csrf },
        body: JSON.stringify({ clinic_id: clinic, commands: batch }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.detail || response.statusText);
      }
      const answers = await response.json();
      answered += answers.length;
      root.dataset.answered = String(answered);
      for (const a of answers) {
        const c = batch.find((x) => x.id === a.id);
        queue = queue.filter((x) => x.id !== a.id);
        await remove("queue", a.id);
        if (c && (a.status === "conflict" || a.status === "refused")) {
          const k = { id: a.id, command: c, answer: a, clinic_of: clinic };
          conflicts.push(k);
          await write("conflicts", k);
        }
      }
      problem = "";
    } catch (e) {
      if (navigator.onLine) problem = "Sign in again or retry: the changes were not sent (" + e.message + ")";
    } finally {
      sending = false;
    }
    await refresh();
    if (queue.length && navigator.onLine && !problem) send();
  }

  // ---- Start --------------------------------------------------------------------------
  $("#patient-q").addEventListener("input", draw);
  $("#book-doctor").addEventListener("change", draw);
  $("#book-close").addEventListener("click", () => { booking = null; draw(); });
  $("#walk-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const name = form.name.value.trim();
    const phone = form.phone.value.trim();
    const email = form.email.value.trim();
    if (!phone && !email) {
      form.phone.setCustomValidity("A phone or an email to reach the patient");
      form.reportValidity();
      form.phone.setCustomValidity("");
      return;
    }
    const id = uuidv7(Date.now());
    await command("walk_in", { patient_id: id, name, phone: phone || null, email: email || null });
    booking = { id, name };
    form.reset();
    $("#walk-in").open = false;
    draw();
  });
  window.addEventListener("online", () => { problem = ""; draw(); send().then(refresh); });
  window.addEventListener("offline", draw);
  setInterval(() => { if (navigator.onLine) send().then(refresh); }, 20000);
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/desk/sw.js", { scope: "/desk/" }).catch(() => {});

  (async () => {
    const kept = await read("snapshots", clinic);
    if (kept) {
      snapshot = kept;
      day = kept.days[0];
    }
    // Commands made on this clinic's page (the device may serve several clinics' desks).
    queue = (await readAll("queue"))
      .filter((c) => c.clinic_of === clinic)
      .map(({ clinic_of, ...c }) => c)
      .sort((a, b) => a.made_at.localeCompare(b.made_at));
    conflicts = (await readAll("conflicts")).filter((k) => k.clinic_of === clinic);
    draw();
    await refresh();
    send();
  })();
})();
