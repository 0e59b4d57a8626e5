/* Cross-origin isolation for static hosts that cannot send headers.
 *
 * Loaded as a plain <script> by index.html, this file registers itself as a service worker when the page is not
 * cross-origin isolated, then reloads the page once the worker controls it. As the service worker, it re-serves
 * every same-origin response with Cross-Origin-Opener-Policy: same-origin, Cross-Origin-Embedder-Policy:
 * require-corp and Cross-Origin-Resource-Policy: same-origin, which makes the page isolated and
 * SharedArrayBuffer available. Where the server already sends the headers (npm start, npm run preview) it does
 * nothing. Same idea as the coi-serviceworker package, kept small and local to this project.
 */
/* eslint-disable no-restricted-globals */
if (typeof window === "undefined") {
  // ---- service worker ----
  self.addEventListener("install", () => self.skipWaiting());
  self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
  self.addEventListener("message", (event) => { if (event.data === "claim") event.waitUntil(self.clients.claim()); });
  self.addEventListener("fetch", (event) => {
    const req = event.request;
    if (req.cache === "only-if-cached" && req.mode !== "same-origin") return;
    if (new URL(req.url).origin !== self.location.origin) return; // other origins: the browser's own handling
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
    if (window.crossOriginIsolated) { sessionStorage.removeItem(KEY); return; }
    if (!window.isSecureContext || !("serviceWorker" in navigator)) return; // the page explains what is wrong
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
