/* Open port: a VM's HTTP server seen in the browser, through the page's service worker (public/coi-serviceworker.js
 * loads this file with importScripts). A request for /port/VM/PORT/PATH is carried to VM's TCP port PORT over the
 * lab network: the service worker asks a Tabvisor dashboard tab for a connection (the tab hands it a MessagePort
 * whose other end is the network's switch worker, where the gateway opens the TCP connection: web/net/tcp-relay.ts),
 * writes the HTTP request and streams the answer back as the Response. No server outside the browser is involved.
 *
 * - Each request gets its own connection (HTTP/1.1 with "Connection: close"); the answer may be framed by
 *   Content-Length, chunked, or by the close (keep-alive servers work: we close after one answer).
 * - Redirects: a Location on the VM (an absolute path, or an absolute URL naming the VM) is rewritten under
 *   /port/VM/PORT/, and the browser follows it. A page's absolute links (/style.css) are caught the same way: a
 *   request from a page under /port/VM/PORT/ for a path outside it is sent to the same VM and port.
 * - Errors come as small pages: "connection refused" (502) when nothing listens, "no such VM" (404), "timed out"
 *   (504).
 *
 * Plain script (no modules: a classic service worker imports it); the parts are on globalThis.tabvisorPortProxy so
 * that Node tests can load and check them.
 */
(function () {
  "use strict";
  const PREFIX = "/port/";
  const enc = new TextEncoder();
  const dec = new TextDecoder();

  /** {vm, port, path} for a /port/VM/PORT/... URL, or for a same-origin URL requested by a page under one; else null. */
  function parsePortUrl(url, clientUrl) {
    const u = new URL(url);
    const m = /^\/port\/([A-Za-z0-9][A-Za-z0-9.-]{0,62})\/(\d{1,5})(\/.*)?$/.exec(u.pathname);
    if (m) {
      const port = Number(m[2]);
      if (port < 1 || port > 65535) return null;
      return { vm: m[1], port, path: (m[3] || "/") + u.search };
    }
    if (clientUrl && !u.pathname.startsWith(PREFIX)) {
      const c = parsePortUrl(clientUrl);
      if (c && new URL(clientUrl).origin === u.origin) return { vm: c.vm, port: c.port, path: u.pathname + u.search };
    }
    return null;
  }

  const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host"];

  /** The request's bytes: request line, headers (the browser's, less hop-by-hop ones), body. */
  function buildRequest(method, path, headers, body, host) {
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n`;
    for (const [k, v] of headers) {
      if (HOP_BY_HOP.includes(k.toLowerCase()) || /[\r\n]/.test(k + v)) continue;
      head += `${k}: ${v}\r\n`;
    }
    if (body && body.length) head += `Content-Length: ${body.length}\r\n`;
    head += "\r\n";
    const h = enc.encode(head);
    if (!body || !body.length) return h;
    const all = new Uint8Array(h.length + body.length);
    all.set(h);
    all.set(body, h.length);
    return all;
  }

  /**
   * Reads an HTTP/1.x response from a byte stream: onHead({status, statusText, headers}) once (1xx answers
   * skipped), onBody(bytes) for the body, onDone() at its end (Content-Length reached, the last chunk, or close()
   * for a close-delimited body), onError(message) when the bytes are not HTTP.
   */
  class ResponseParser {
    constructor(h) { this.h = h; this.buf = new Uint8Array(0); this.state = "head"; this.left = 0; this.mode = "close"; this.finished = false; }
    push(bytes) {
      if (this.finished) return;
      const b = new Uint8Array(this.buf.length + bytes.length);
      b.set(this.buf); b.set(bytes, this.buf.length);
      this.buf = b;
      this.run();
    }
    /** The connection closed: the end of a close-delimited body, an error for anything else unfinished. */
    close() {
      if (this.finished) return;
      if (this.state === "body" && this.mode === "close") return this.done();
      this.fail(this.state === "head" ? "the VM closed the connection without an HTTP answer" : "the VM closed the connection in the middle of its answer");
    }
    run() {
      while (!this.finished) {
        if (this.state === "head") {
          const end = indexOf(this.buf, [13, 10, 13, 10]);
          if (end < 0) { if (this.buf.length > 65536) this.fail("the answer's header is too long"); return; }
          const lines = dec.decode(this.buf.subarray(0, end)).split("\r\n");
          this.buf = this.buf.subarray(end + 4);
          const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(lines[0]);
          if (!m) return this.fail("the VM's answer is not HTTP/1.x");
          const status = Number(m[1]);
          const headers = [];
          for (const l of lines.slice(1)) { const i = l.indexOf(":"); if (i > 0) headers.push([l.slice(0, i).trim(), l.slice(i + 1).trim()]); }
          if (status >= 100 && status < 200) continue; // 100 Continue and the like: the real answer follows
          const get = (n) => (headers.find(([k]) => k.toLowerCase() === n) || [])[1];
          const te = (get("transfer-encoding") || "").toLowerCase();
          const cl = get("content-length");
          if (te.includes("chunked")) this.mode = "chunked";
          else if (cl !== undefined && /^\d+$/.test(cl)) { this.mode = "length"; this.left = Number(cl); }
          this.h.onHead({ status, statusText: m[2] || "", headers });
          this.state = "body";
          if (status === 204 || status === 304 || (this.mode === "length" && this.left === 0)) return this.done();
          if (this.mode === "chunked") this.state = "chunk-size";
        } else if (this.state === "body") {
          if (!this.buf.length) return;
          if (this.mode === "length") {
            const n = Math.min(this.left, this.buf.length);
            this.h.onBody(this.buf.slice(0, n));
            this.buf = this.buf.subarray(n);
            this.left -= n;
            if (this.left === 0) return this.done();
          } else { this.h.onBody(this.buf.slice()); this.buf = new Uint8Array(0); }
        } else if (this.state === "chunk-size") {
          const end = indexOf(this.buf, [13, 10]);
          if (end < 0) { if (this.buf.length > 1024) this.fail("a bad chunk size"); return; }
          const size = parseInt(dec.decode(this.buf.subarray(0, end)).split(";")[0].trim(), 16);
          if (!Number.isFinite(size) || size < 0) return this.fail("a bad chunk size");
          this.buf = this.buf.subarray(end + 2);
          if (size === 0) { this.state = "trailer"; continue; }
          this.left = size;
          this.state = "chunk";
        } else if (this.state === "chunk") {
          if (!this.buf.length) return;
          const n = Math.min(this.left, this.buf.length);
          this.h.onBody(this.buf.slice(0, n));
          this.buf = this.buf.subarray(n);
          this.left -= n;
          if (this.left === 0) this.state = "chunk-end";
        } else if (this.state === "chunk-end") {
          if (this.buf.length < 2) return;
          this.buf = this.buf.subarray(2);
          this.state = "chunk-size";
        } else if (this.state === "trailer") {
          const end = indexOf(this.buf, [13, 10]);
          if (end < 0) return;
          this.buf = this.buf.subarray(end + 2);
          if (end === 0) return this.done();
        }
      }
    }
    done() { this.finished = true; this.h.onDone(); }
    fail(msg) { this.finished = true; this.h.onError(msg); }
  }

  function indexOf(b, pat) {
    outer: for (let i = 0; i + pat.length <= b.length; i++) {
      for (let j = 0; j < pat.length; j++) if (b[i + j] !== pat[j]) continue outer;
      return i;
    }
    return -1;
  }

  /** A Location the VM sent, as the browser should follow it (under /port/VM/PORT/ when it points at the VM). */
  function rewriteLocation(loc, vm, port, origin) {
    const prefix = `${PREFIX}${vm}/${port}`;
    if (loc.startsWith("/") && !loc.startsWith("//")) return prefix + loc;
    try {
      const u = new URL(loc);
      // servers build such URLs from the Host header we sent: the VM's name (in the lab's domain, or not)
      const hostIsVm = u.hostname === vm || u.hostname.startsWith(vm + ".");
      const p = u.port ? Number(u.port) : u.protocol === "https:" ? 443 : 80;
      if (u.protocol === "http:" && hostIsVm) return `${origin}${PREFIX}${vm}/${p}${u.pathname}${u.search}${u.hash}`;
    } catch { /* relative: the browser resolves it against the current URL, which is under the prefix already */ }
    return loc;
  }

  function errorPage(status, title, detail) {
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
    const html = `<!doctype html><meta charset="utf-8"><title>${esc(title)}</title>` +
      `<body style="font:15px system-ui,sans-serif;margin:3em;color:#222"><h1 style="font-size:1.4em">${esc(title)}</h1>` +
      `<p>${esc(detail)}</p><p style="color:#777">Tabvisor: this page stands for a VM's port, reached through the dashboard tab.</p></body>`;
    return new Response(html, { status, headers: { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" } });
  }

  /** what the answer's stream holds before it stops asking the VM for more */
  const QUEUE_BYTES = 256 * 1024;

  /** How long to wait for a dashboard tab to answer, and for the connection to open. */
  const CONNECT_TIMEOUT_MS = 15000;

  /** A relay port to VM:port from one of the dashboard tabs (the first that has the VM), or an error string. */
  async function openRelay(sw, vm, port) {
    const all = await sw.clients.matchAll({ type: "window", includeUncontrolled: true });
    const dashboards = all.filter((c) => !new URL(c.url).pathname.startsWith(PREFIX));
    if (!dashboards.length) return { error: "no Tabvisor dashboard is open: open it (the VMs run in its tab), then reload this page", status: 404 };
    let last = { error: `no VM named ${vm} in the open Tabvisor tabs`, status: 404 };
    for (const c of dashboards) {
      const ch = new MessageChannel();
      const answer = new Promise((resolve) => {
        const timer = setTimeout(() => resolve({ t: "close", error: "timed out" }), CONNECT_TIMEOUT_MS);
        ch.port1.onmessage = (ev) => { clearTimeout(timer); resolve(ev.data); };
      });
      c.postMessage({ t: "tabvisor-open-port", vm, port }, [ch.port2]);
      const a = await answer;
      if (a && a.t === "open") return { relay: ch.port1 };
      ch.port1.close();
      if (a && a.t === "no-vm") continue;
      const error = (a && a.error) || "no answer";
      return { error, status: /refused/.test(error) ? 502 : /timed out/.test(error) ? 504 : 502 };
    }
    return last;
  }

  /** The service worker's answer to a request for a VM's port. */
  async function proxy(sw, request, target) {
    const { vm, port, path } = target;
    const body = request.method === "GET" || request.method === "HEAD" ? null : new Uint8Array(await request.arrayBuffer());
    const r = await openRelay(sw, vm, port);
    if (r.error) {
      const refused = /refused/.test(r.error);
      return errorPage(r.status, refused ? `Connection refused: nothing listens on port ${port} of ${vm}` : `Port ${port} of ${vm} cannot be reached`, r.error);
    }
    const relay = r.relay;
    const headers = [];
    request.headers.forEach((v, k) => headers.push([k, v]));
    relay.postMessage({ t: "write", data: buildRequest(request.method, path, headers, body, port === 80 ? vm : `${vm}:${port}`) });
    return new Promise((resolve) => {
      let controller;
      let answered = false;
      const origin = new URL(request.url).origin;
      const parser = new ResponseParser({
        onHead: (head) => {
          const h = new Headers();
          for (const [k, v] of head.headers) {
            const lk = k.toLowerCase();
            if (HOP_BY_HOP.includes(lk) || lk === "content-length" && head.headers.some(([x]) => x.toLowerCase() === "transfer-encoding")) continue;
            try { h.append(k, lk === "location" ? rewriteLocation(v, vm, port, origin) : v); } catch { /* a header the browser refuses */ }
          }
          h.set("Cross-Origin-Resource-Policy", "same-origin");
          const noBody = request.method === "HEAD" || head.status === 204 || head.status === 304;
          const stream = noBody ? null : new ReadableStream(
            { start: (c) => { controller = c; }, pull: () => credit() },
            new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }));
          answered = true;
          resolve(new Response(stream, { status: head.status, statusText: head.statusText, headers: h }));
        },
        onBody: (b) => { try { controller && controller.enqueue(b); } catch { /* the page went away */ } },
        onDone: () => { try { controller && controller.close(); } catch { /* closed */ } relay.postMessage({ t: "abort" }); relay.close(); },
        onError: (msg) => {
          if (!answered) { answered = true; resolve(errorPage(502, `Port ${port} of ${vm} did not answer with HTTP`, msg)); }
          else try { controller && controller.error(new Error(msg)); } catch { /* closed */ }
          relay.postMessage({ t: "abort" });
          relay.close();
        },
      });
      // Flow control: the relay lets the VM send only as much as we say was passed on (web/net/tcp-relay.ts). Bytes
      // count as passed on once they left the stream's queue (the reader took them), or never entered it (the head,
      // chunk sizes).
      let received = 0, credited = 0;
      const credit = () => {
        const queued = controller ? Math.max(0, QUEUE_BYTES - (controller.desiredSize ?? 0)) : 0;
        const passed = received - queued;
        if (passed > credited) { relay.postMessage({ t: "read", n: passed - credited }); credited = passed; }
      };
      relay.onmessage = (ev) => {
        const m = ev.data;
        if (m.t === "data") { received += m.data.length; parser.push(m.data); credit(); }
        else if (m.t === "end" || m.t === "close") {
          if (m.t === "close" && m.error && !answered) {
            answered = true;
            resolve(errorPage(/refused/.test(m.error) ? 502 : 504, `Port ${port} of ${vm}: ${m.error}`, m.error));
            return;
          }
          parser.close();
        }
      };
    });
  }

  globalThis.tabvisorPortProxy = { PREFIX, parsePortUrl, buildRequest, ResponseParser, rewriteLocation, errorPage, proxy };
})();
