// The front desk's service worker: keeps the offline desk's page, script and style so the
// page opens without a network. Data (the snapshot and the waiting commands) lives in
// IndexedDB, kept by the page itself; requests for it are never answered from here.
"use strict";
const CACHE = "clinic-desk-v1";
const SHELL = ["/desk/offline", "/desk/offline.js", "/assets/console.css", "/desk/manifest.webmanifest", "/desk/icon.svg"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  // The network first (a fresh page carries a fresh sign-in), the kept copy without one.
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok && !response.redirected) {
          const copy = response.clone();
          caches.open(CACHE).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname).then((kept) => kept || Response.error())),
  );
});
