/* The page's service worker: cross-origin isolation for static hosts that cannot send headers, and "Open port".
 *
 * Loaded as a plain <script> by index.html, this file registers itself as the service worker. When the page is not
 * cross-origin isolated it then reloads the page once the worker controls it: as the service worker, it re-serves
 * every same-origin response with Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy:
 * require-corp and Cross-Origin-Resource-Policy: same-origin, which makes the page isolated and SharedArrayBuffer
 * available (same idea as the coi-serviceworker package, kept small and local to this project). Where the server
 * sends the headers already (npm start, npm run preview) it registers all the same, for the other job: requests for
 * /port/VM/PORT/... are a VM's web server, carried over the lab network (public/port-proxy.js).
 */
/* eslint-disable no-restricted-globals */
if (typeof window === "undefined") {
  // ---- service worker ----
  importScripts("port-proxy.js");
  // registered by an isolated page (the server sends the headers): only the ports, every other request is left to
  // the browser as if there were no worker
  const portsOnly = new URL(self.location.href).searchParams.get("mode") === "ports";
  self.addEventListener("install", () => self.skipWaiting());
  self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
  self.addEventListener("message", (event) => { if (event.data === "claim") event.waitUntil(self.clients.claim()); });
  self.addEventListener("fetch", (event) => {
    const req = event.request;
    if (req.cache === "only-if-cached" && req.mode !== "same-origin") return;
    if (new URL(req.url).origin !== self.location.origin) return; // other origins: the browser's own handling
    // a VM's port: /port/VM/PORT/..., or a path a page shown from one asks for (its absolute links)
    const target = self.tabvisorPortProxy.parsePortUrl(req.url, req.referrer || undefined);
    if (target) {
      event.respondWith(self.tabvisorPortProxy.proxy(self, req, target));
      return;
    }
    if (portsOnly) return;
    event.respondWith(
      fetch(req).then((res) => {
        if (res.status === 0 || res.type === "opaque") return res;
        const headers = new Headers(res.headers);
        headers.set("Cross-Origin-Opener-Policy", "same-origin");
        headers.set("Cross-Origin-Embedder-Policy", "require-corp");
        headers.set("Cross-Origin-Resource-Policy", "same-origin");
        return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
      }),
    );
  });
} else {
  // ---- page ----
  (function () {
    const KEY = "tabvisor-coi-reloaded";
    if (!window.isSecureContext || !("serviceWorker" in navigator)) return; // the page explains what is wrong
    if (window.crossOriginIsolated) {
      sessionStorage.removeItem(KEY);
      // isolated by this worker (a static host without the headers): it must stay as it is, it serves the headers
      const ctl = navigator.serviceWorker.controller;
      if (ctl && !/[?&]mode=ports/.test(ctl.scriptURL)) return;
      // isolated by the server's headers: the worker is only wanted for Open port (no reload)
      navigator.serviceWorker.register(document.currentScript.src + "?mode=ports").catch((e) => console.warn("the service worker (Open port) could not be registered:", e));
      return;
    }
    if (sessionStorage.getItem(KEY)) return; // reloaded once already and still not isolated: give up
    window.coiReloading = true;
    const giveUp = (why) => {
      console.warn("cross-origin isolation through a service worker failed:", why);
      window.coiReloading = false;
      window.dispatchEvent(new Event("coi-failed"));
    };
    // A registration that never settles (service workers blocked by policy, say) must not leave the page waiting.
    const timeout = setTimeout(() => giveUp("the service worker did not take over within 8 s"), 8000);
    const reload = () => { clearTimeout(timeout); sessionStorage.setItem(KEY, "1"); window.location.reload(); };
    navigator.serviceWorker.register(document.currentScript.src).then((reg) => {
      if (navigator.serviceWorker.controller) { reload(); return; } // controlled, but this load came without the headers
      navigator.serviceWorker.addEventListener("controllerchange", reload);
      if (reg.active && !reg.installing && !reg.waiting) reg.active.postMessage("claim"); // already active: it claims on activate only
    }, (e) => { clearTimeout(timeout); giveUp(e); });
  })();
}
