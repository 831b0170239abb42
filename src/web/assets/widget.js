// The clinic chat widget: one <script src=".../widget.js" data-clinic="…"> tag on any
// page. It lives in a Shadow DOM (the host page's CSS cannot reach it), needs no build
// step and loads nothing from elsewhere. Replies stream over SSE; slot choices and the
// pending proposal are buttons; signing in (or registering) happens inside the panel.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__clinicWidget) return;
  window.__clinicWidget = true;
  var base = new URL(script.src, location.href).origin;
  var api = base + "/api/v1";
  var clinic = script.getAttribute("data-clinic") || "";
  var lang = (script.getAttribute("data-lang") || navigator.language || "en").slice(0, 2).toLowerCase();

  var STRINGS = {
    en: {
      open: "Book a visit", title: "Booking assistant", close: "Close",
      consent: "This assistant helps you find a doctor and book. The conversation is kept, encrypted, so you can continue it; you can delete it at any time. It does not give diagnoses; in an emergency call your local emergency number.",
      agree: "I agree, start", placeholder: "Describe what you need…", send: "Send",
      confirm: "Confirm", decline: "Decline", pending: "Waiting for your confirmation",
      login: "Sign in", register: "Create an account", email: "Email", password: "Password",
      name: "Your name", code: "Code from the email", verify: "Verify", cancel: "Back",
      signedIn: "Signed in as", logout: "Sign out", delete: "Delete this conversation",
      deleted: "The conversation was deleted.", error: "Something went wrong", mfa: "This account uses a second factor; sign in on the clinic site instead.",
      loginNeeded: "Please sign in to book.", codeSent: "We sent a code to your email.", thinking: "…",
      booked: "Booked", slots: "Available times"
    },
    pt: {
      open: "Marcar consulta", title: "Assistente de marcações", close: "Fechar",
      consent: "Este assistente ajuda a encontrar um médico e a marcar. A conversa é guardada, cifrada, para poder continuar; pode apagá-la a qualquer momento. Não faz diagnósticos; numa emergência ligue 112.",
      agree: "Concordo, começar", placeholder: "Descreva o que precisa…", send: "Enviar",
      confirm: "Confirmar", decline: "Recusar", pending: "À espera da sua confirmação",
      login: "Entrar", register: "Criar conta", email: "Email", password: "Palavra-passe",
      name: "O seu nome", code: "Código recebido por email", verify: "Verificar", cancel: "Voltar",
      signedIn: "Sessão iniciada como", logout: "Sair", delete: "Apagar esta conversa",
      deleted: "A conversa foi apagada.", error: "Algo correu mal", mfa: "Esta conta usa um segundo fator; entre no site da clínica.",
      loginNeeded: "Entre na sua conta para marcar.", codeSent: "Enviámos um código para o seu email.", thinking: "…",
      booked: "Marcado", slots: "Horários disponíveis"
    }
  };
  var T = STRINGS[lang] || STRINGS.en;

  var CSS = [
    ":host{all:initial}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}",
    ".launch{position:fixed;right:16px;bottom:16px;z-index:2147483000;background:#0b5fff;color:#fff;border:0;border-radius:999px;padding:12px 18px;font-size:15px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".launch:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}",
    ".panel{position:fixed;right:16px;bottom:72px;z-index:2147483001;width:min(380px,calc(100vw - 16px));height:min(600px,calc(100vh - 88px));background:#fff;color:#1b1b1b;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.3);display:flex;flex-direction:column;overflow:hidden}",
    "@media (max-width:420px){.panel{right:8px;left:8px;width:auto;bottom:64px}}",
    "[hidden]{display:none!important}",
    "header{display:flex;align-items:center;justify-content:space-between;background:#0b5fff;color:#fff;padding:10px 12px}",
    "header h2{font-size:16px;margin:0}",
    "header button{background:transparent;color:#fff;border:0;font-size:20px;cursor:pointer;min-width:32px;min-height:32px}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px}",
    ".msg{max-width:85%;padding:8px 10px;border-radius:10px;line-height:1.35;font-size:14px;white-space:pre-wrap;word-wrap:break-word}",
    ".user{align-self:flex-end;background:#e7efff}",
    ".bot{align-self:flex-start;background:#f2f2f2}",
    ".emergency{background:#ffe3e3;border:1px solid #c00}",
    ".choices{display:flex;flex-wrap:wrap;gap:6px}",
    ".choices button,.pending button,form button,.foot button,.consent button{border:1px solid #0b5fff;background:#fff;color:#0b5fff;border-radius:8px;padding:8px 10px;font-size:14px;cursor:pointer;min-height:36px}",
    "button.primary{background:#0b5fff;color:#fff}",
    ".pending{border:2px solid #0b5fff;border-radius:10px;padding:10px;font-size:14px;display:flex;flex-direction:column;gap:8px}",
    ".pending .row{display:flex;gap:8px}",
    "form{display:flex;gap:6px;padding:8px;border-top:1px solid #ddd}",
    "form.stack{flex-direction:column;border:1px solid #ddd;border-radius:10px}",
    "input{flex:1;border:1px solid #999;border-radius:8px;padding:8px;font-size:14px;min-height:36px}",
    "label{font-size:13px;display:flex;flex-direction:column;gap:4px}",
    ".foot{display:flex;justify-content:space-between;align-items:center;padding:4px 8px 8px;font-size:12px;color:#555;gap:6px;flex-wrap:wrap}",
    ".foot button{font-size:12px;padding:4px 8px;min-height:28px}",
    ".consent{padding:12px;font-size:14px;line-height:1.4;display:flex;flex-direction:column;gap:12px}",
    ".note{font-size:12px;color:#555}"
  ].join("\n");

  var host = document.createElement("div");
  host.setAttribute("data-clinic-widget", "");
  var root = host.attachShadow({ mode: "open" });
  if ("adoptedStyleSheets" in root && typeof CSSStyleSheet === "function") {
    var sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
    root.adoptedStyleSheets = [sheet];
  } else {
    var style = document.createElement("style");
    style.textContent = CSS;
    root.appendChild(style);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  // The access token stays in this closure only, never in the host page's storage.
  var state = {
    session: sessionStorage.getItem("clinic.session") || null,
    // Proves to the service that this page started the conversation.
    secret: sessionStorage.getItem("clinic.session.secret") || null,
    token: null,
    user: null,
    lastPick: null,
    busy: false
  };

  var launch = el("button", { class: "launch", type: "button", "aria-expanded": "false", "aria-controls": "clinic-panel", text: T.open });
  var log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": T.title });
  var input = el("input", { type: "text", name: "text", "aria-label": T.placeholder, placeholder: T.placeholder, autocomplete: "off", maxlength: "2000" });
  var composer = el("form", { class: "composer", onsubmit: function (e) { e.preventDefault(); var t = input.value.trim(); if (t) { input.value = ""; sendTyped(t); } } },
    [input, el("button", { type: "submit", class: "primary", text: T.send })]);
  var who = el("span", { class: "who" });
  var foot = el("div", { class: "foot" }, [who,
    el("button", { type: "button", class: "signin", text: T.login, onclick: function () { showLogin(); } }),
    el("button", { type: "button", class: "delete", text: T.delete, onclick: deleteConversation })]);
  var panel = el("section", { class: "panel", id: "clinic-panel", role: "dialog", "aria-modal": "false", "aria-label": T.title, hidden: "" }, [
    el("header", {}, [el("h2", { text: T.title }), el("button", { type: "button", "aria-label": T.close, text: "×", onclick: toggle })]),
    log, composer, foot
  ]);
  root.appendChild(launch);
  root.appendChild(panel);
  launch.addEventListener("click", toggle);
  // Escape closes the open panel wherever the focus went (a pressed button may be gone).
  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && !panel.hasAttribute("hidden")) toggle();
  });

  function toggle() {
    var open = panel.hasAttribute("hidden");
    if (open) panel.removeAttribute("hidden"); else panel.setAttribute("hidden", "");
    launch.setAttribute("aria-expanded", String(open));
    if (open) {
      if (!state.session) showConsent(); else if (!log.childElementCount) add("bot", "…");
      setTimeout(function () { (root.querySelector(".consent button") || input).focus(); }, 0);
    } else launch.focus();
  }

  function refreshWho() {
    // Nothing to delete before a conversation exists.
    var del = foot.querySelector(".delete");
    if (state.session) del.removeAttribute("hidden"); else del.setAttribute("hidden", "");
    who.textContent = state.user ? T.signedIn + " " + state.user : "";
    var b = foot.querySelector(".signin");
    b.textContent = state.user ? T.logout : T.login;
    b.onclick = state.user ? logout : function () { showLogin(); };
  }

  function add(kind, text) {
    var m = el("div", { class: "msg " + kind, text: text });
    log.appendChild(m);
    log.scrollTop = log.scrollHeight;
    return m;
  }

  function clearInteractive() {
    Array.prototype.forEach.call(log.querySelectorAll(".choices,.pending,form.stack"), function (n) { n.remove(); });
  }

  function headers(json) {
    var h = {};
    if (json) h["content-type"] = "application/json";
    if (state.token) h.authorization = "Bearer " + state.token;
    if (state.secret) h["x-chat-secret"] = state.secret;
    return h;
  }

  function problem(r) {
    return r.json().catch(function () { return {}; }).then(function (b) {
      var e = new Error(b.detail || T.error);
      e.code = b.code; e.status = r.status;
      throw e;
    });
  }

  function showConsent() {
    composer.setAttribute("hidden", "");
    var box = el("div", { class: "consent" }, [
      el("p", { text: T.consent }),
      el("button", { type: "button", class: "primary", text: T.agree, onclick: function () { box.remove(); start(); } })
    ]);
    log.appendChild(box);
  }

  function start() {
    var tz = (Intl.DateTimeFormat().resolvedOptions().timeZone) || null;
    fetch(api + "/chat/sessions", { method: "POST", headers: headers(true), body: JSON.stringify(clinic ? { consent: true, time_zone: tz, language: lang, clinic_id: clinic } : { consent: true, time_zone: tz, language: lang }) })
      .then(function (r) { return r.ok ? r.json() : problem(r); })
      .then(function (reply) {
        state.session = reply.session_id;
        state.secret = reply.session_secret;
        sessionStorage.setItem("clinic.session", state.session);
        sessionStorage.setItem("clinic.session.secret", state.secret);
        refreshWho();
        composer.removeAttribute("hidden");
        render(reply, add("bot", ""));
        input.focus();
      })
      .catch(function (e) { add("bot", e.message); });
  }

  // A typed number ("2", "#2", "2.") picks that listed time, as pressing its button does
  // (so it is also the pick re-sent after signing in).
  function sendTyped(text) {
    var n = /^#?\s*(\d{1,2})\.?$/.exec(text);
    var buttons = log.querySelectorAll(".choices button");
    var b = n && buttons[Number(n[1]) - 1];
    if (b) { b.click(); return; }
    send(text);
  }

  // POST a message and read the SSE answer: `token` pieces, `reset`, then `reply`.
  // `shown`: the message is already on screen; `display`: what to show instead of `text`
  // (a slot button's label rather than the message with its id).
  function send(text, shown, display) {
    if (state.busy || !state.session) return;
    state.busy = true;
    clearInteractive();
    if (!shown) add("user", display || text);
    var bubble = add("bot", T.thinking);
    var streamed = "";
    fetch(api + "/chat/sessions/" + state.session + "/messages", {
      method: "POST", headers: Object.assign(headers(true), { accept: "text/event-stream" }), body: JSON.stringify({ text: text })
    }).then(function (r) {
      if (!r.ok) return problem(r);
      var reader = r.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += decoder.decode(chunk.value, { stream: true });
          var parts = buffer.split("\n\n");
          buffer = parts.pop();
          parts.forEach(function (block) {
            var event = "message", data = [];
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event:") === 0) event = line.slice(6).trim();
              else if (line.indexOf("data:") === 0) data.push(line.slice(5).replace(/^ /, ""));
            });
            var payload = data.join("\n");
            if (event === "token") { streamed += payload; bubble.textContent = streamed; }
            else if (event === "reset") { streamed = ""; bubble.textContent = T.thinking; }
            else if (event === "reply") { render(JSON.parse(payload), bubble); }
            else if (event === "error") { var p = JSON.parse(payload); bubble.textContent = p.detail || T.error; }
          });
          log.scrollTop = log.scrollHeight;
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      bubble.textContent = e.message || T.error;
      if (e.code === "session_expired" || e.status === 404) { forget(); }
    }).then(function () { state.busy = false; });
  }

  function render(reply, bubble) {
    bubble.textContent = reply.reply;
    if (reply.emergency) bubble.classList.add("emergency");
    var picks = (reply.actions || []).filter(function (a) { return a.kind === "pick_slot"; });
    if (picks.length) {
      var choices = el("div", { class: "choices", role: "group", "aria-label": T.slots });
      picks.forEach(function (a) {
        choices.appendChild(el("button", { type: "button", "data-slot": a.slot_id || "", text: a.label, onclick: function () { state.lastPick = a.message; send(a.message, false, a.label); } }));
      });
      log.appendChild(choices);
    }
    if ((reply.actions || []).some(function (a) { return a.kind === "log_in"; }) && !state.token) {
      showLogin(T.loginNeeded);
    }
    if (reply.pending) {
      var box = el("div", { class: "pending", role: "group", "aria-label": T.pending }, [
        el("div", { text: reply.pending.summary }),
        el("div", { class: "row" }, [
          el("button", { type: "button", class: "primary confirm", text: T.confirm, onclick: function () { decide("confirm"); } }),
          el("button", { type: "button", class: "decline", text: T.decline, onclick: function () { decide("decline"); } })
        ])
      ]);
      log.appendChild(box);
      box.querySelector("button").focus();
    }
    log.scrollTop = log.scrollHeight;
  }

  function decide(what) {
    clearInteractive();
    var bubble = add("bot", T.thinking);
    fetch(api + "/chat/sessions/" + state.session + "/" + what, { method: "POST", headers: headers(false) })
      .then(function (r) { return r.ok ? r.json() : problem(r); })
      .then(function (reply) {
        render(reply, bubble);
        if (reply.committed) bubble.setAttribute("data-committed", "true");
        // The pressed button is gone: the keyboard goes back to the message box.
        if (!root.activeElement || !panel.contains(root.activeElement)) input.focus();
      })
      .catch(function (e) {
        bubble.textContent = e.message;
        if (e.status === 401) showLogin(T.loginNeeded);
      });
  }

  function field(labelText, attrs) {
    var i = el("input", attrs);
    return [el("label", {}, [document.createTextNode(labelText), i]), i];
  }

  function showLogin(reason) {
    clearInteractive();
    var email = field(T.email, { type: "email", name: "email", autocomplete: "email", required: "" });
    var password = field(T.password, { type: "password", name: "password", autocomplete: "current-password", required: "" });
    var status = el("p", { class: "note", role: "status", text: reason || "" });
    var form = el("form", { class: "stack login", onsubmit: function (e) {
      e.preventDefault();
      signIn(email[1].value.trim(), password[1].value, status);
    } }, [status, email[0], password[0],
      el("div", { class: "row" }, [
        el("button", { type: "submit", class: "primary", text: T.login }),
        el("button", { type: "button", class: "to-register", text: T.register, onclick: function () { showRegister(); } })
      ])]);
    log.appendChild(form);
    log.scrollTop = log.scrollHeight;
    email[1].focus();
  }

  function signIn(email, password, status) {
    return fetch(api + "/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: email, password: password }) })
      .then(function (r) { return r.ok ? r.json() : problem(r); })
      .then(function (b) {
        if (b.status !== "authenticated") { status.textContent = T.mfa; return; }
        state.token = b.access_token;
        state.user = (b.user && (b.user.display_name || b.user.email)) || email;
        refreshWho();
        clearInteractive();
        // Go on where the patient was: the time they picked before signing in.
        if (state.lastPick) send(state.lastPick, true);
      })
      .catch(function (e) { status.textContent = e.message; });
  }

  function showRegister() {
    clearInteractive();
    var name = field(T.name, { type: "text", name: "name", autocomplete: "name", required: "" });
    var email = field(T.email, { type: "email", name: "email", autocomplete: "email", required: "" });
    var password = field(T.password, { type: "password", name: "password", autocomplete: "new-password", required: "", minlength: "10" });
    var status = el("p", { class: "note", role: "status" });
    var form = el("form", { class: "stack register", onsubmit: function (e) {
      e.preventDefault();
      fetch(api + "/auth/register", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: email[1].value.trim(), password: password[1].value, display_name: name[1].value.trim() }) })
        .then(function (r) { return r.ok ? r.json() : problem(r); })
        .then(function () { showVerify(email[1].value.trim(), password[1].value); })
        .catch(function (e) { status.textContent = e.message; });
    } }, [status, name[0], email[0], password[0], el("div", { class: "row" }, [
      el("button", { type: "submit", class: "primary", text: T.register }),
      el("button", { type: "button", text: T.cancel, onclick: function () { showLogin(); } })
    ])]);
    log.appendChild(form);
    name[1].focus();
  }

  function showVerify(email, password) {
    clearInteractive();
    var code = field(T.code, { type: "text", name: "code", inputmode: "numeric", autocomplete: "one-time-code", required: "" });
    var status = el("p", { class: "note", role: "status", text: T.codeSent });
    var form = el("form", { class: "stack verify", onsubmit: function (e) {
      e.preventDefault();
      fetch(api + "/auth/verify-email", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email: email, code: code[1].value.trim() }) })
        .then(function (r) { return r.ok ? r.json() : problem(r); })
        .then(function () { return signIn(email, password, status); })
        .catch(function (e) { status.textContent = e.message; });
    } }, [status, code[0], el("button", { type: "submit", class: "primary", text: T.verify })]);
    log.appendChild(form);
    code[1].focus();
  }

  function logout() {
    if (state.token) fetch(api + "/auth/logout", { method: "POST", headers: headers(false) }).catch(function () {});
    state.token = null; state.user = null;
    refreshWho();
  }

  function forget() {
    state.session = null;
    state.secret = null;
    sessionStorage.removeItem("clinic.session");
    sessionStorage.removeItem("clinic.session.secret");
    refreshWho();
  }

  function deleteConversation() {
    if (!state.session) return;
    fetch(api + "/chat/sessions/" + state.session, { method: "DELETE", headers: headers(false) })
      .then(function () {
        forget();
        log.textContent = "";
        add("bot", T.deleted);
        showConsent();
      });
  }

  refreshWho();
  if (document.body) document.body.appendChild(host);
  else document.addEventListener("DOMContentLoaded", function () { document.body.appendChild(host); });
})();
