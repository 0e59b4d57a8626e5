// The service worker's half of "Open port" (public/port-proxy.js) without a browser: which URLs are a VM's port,
// the request it writes, the HTTP answers it reads (every framing, split anywhere), and redirects kept under the
// port's prefix. The whole path through Chromium and a guest's httpd is open-port.test.ts.

import { describe, it, expect } from "vitest";
import "../../public/port-proxy.js";

interface Head { status: number; statusText: string; headers: [string, string][] }
interface Parser { push(b: Uint8Array): void; close(): void }
const P = (globalThis as unknown as { tabvisorPortProxy: {
  parsePortUrl(url: string, client?: string): { vm: string; port: number; path: string } | null;
  buildRequest(method: string, path: string, headers: [string, string][], body: Uint8Array | null, host: string): Uint8Array;
  ResponseParser: new (h: { onHead(h: Head): void; onBody(b: Uint8Array): void; onDone(): void; onError(m: string): void }) => Parser;
  rewriteLocation(loc: string, vm: string, port: number, origin: string): string;
} }).tabvisorPortProxy;

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Feeds `bytes` to a parser in pieces of `step`, then closes; what it made of them. */
function parse(bytes: Uint8Array, step: number, close = true) {
  const out = { head: undefined as Head | undefined, body: "", done: false, error: "" };
  const p = new P.ResponseParser({
    onHead: (h) => { out.head = h; }, onBody: (b) => { out.body += dec.decode(b); }, onDone: () => { out.done = true; }, onError: (m) => { out.error = m; },
  });
  for (let i = 0; i < bytes.length; i += step) p.push(bytes.subarray(i, i + step));
  if (close) p.close();
  return out;
}

describe("Open port in the service worker", () => {
  it("knows a VM's port from its URL, and a page's absolute links from where the page is", () => {
    expect(P.parsePortUrl("https://h/port/web1/80/a/b?x=1")).toEqual({ vm: "web1", port: 80, path: "/a/b?x=1" });
    expect(P.parsePortUrl("https://h/port/web1/8080")).toEqual({ vm: "web1", port: 8080, path: "/" });
    expect(P.parsePortUrl("https://h/port/web1/0/")).toBeNull();
    expect(P.parsePortUrl("https://h/port/web1/70000/")).toBeNull();
    expect(P.parsePortUrl("https://h/port/../80/")).toBeNull();
    expect(P.parsePortUrl("https://h/images/Image")).toBeNull();
    expect(P.parsePortUrl("https://h/style.css", "https://h/port/web1/80/index.html")).toEqual({ vm: "web1", port: 80, path: "/style.css" });
    expect(P.parsePortUrl("https://h/style.css", "https://h/?lab=")).toBeNull(); // the dashboard's own
    expect(P.parsePortUrl("https://other/style.css", "https://h/port/web1/80/")).toBeNull();
  });

  it("writes an HTTP/1.1 request that closes, without the browser's hop-by-hop headers", () => {
    const r = dec.decode(P.buildRequest("POST", "/f?a=1", [["accept", "*/*"], ["connection", "keep-alive"], ["host", "x"], ["bad", "a\r\nInjected: 1"]], enc.encode("hello"), "web1:8080"));
    expect(r).toBe("POST /f?a=1 HTTP/1.1\r\nHost: web1:8080\r\nConnection: close\r\naccept: */*\r\nContent-Length: 5\r\n\r\nhello");
  });

  it("reads answers framed by length, by chunks and by the close, split anywhere", () => {
    const byLength = enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX: y\r\n\r\nhello worldTRAILING-JUNK");
    const chunked = enc.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nT: 1\r\n\r\n");
    const byClose = enc.encode("HTTP/1.0 404 Not Found\r\nServer: busybox\r\n\r\nnot here");
    const cont = enc.encode("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok");
    for (const step of [1, 2, 3, 7, 1000]) {
      const a = parse(byLength, step, false);
      expect([a.head?.status, a.body, a.done]).toEqual([200, "hello world", true]);
      expect(a.head?.headers).toContainEqual(["X", "y"]);
      const b = parse(chunked, step, false);
      expect([b.head?.status, b.body, b.done, b.error]).toEqual([200, "hello world", true, ""]);
      const c = parse(byClose, step);
      expect([c.head?.status, c.head?.statusText, c.body, c.done]).toEqual([404, "Not Found", "not here", true]);
      const d = parse(cont, step, false);
      expect([d.head?.status, d.body, d.done]).toEqual([201, "ok", true]);
    }
    expect(parse(enc.encode("SSH-2.0-OpenSSH_9.2\r\n\r\n"), 5).error).toMatch(/not HTTP/);
    expect(parse(enc.encode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"), 5).error).toMatch(/in the middle of its answer/);
    expect(parse(enc.encode(""), 5).error).toMatch(/without an HTTP answer/);
    expect(parse(enc.encode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 5).error).toMatch(/chunk size/);
  });

  it("keeps redirects to the VM under the port's prefix and leaves others alone", () => {
    const o = "https://tab.example";
    expect(P.rewriteLocation("/dir/", "web1", 80, o)).toBe("/port/web1/80/dir/");
    expect(P.rewriteLocation("http://web1/x?y", "web1", 80, o)).toBe(`${o}/port/web1/80/x?y`);
    expect(P.rewriteLocation("http://web1.lab:8080/", "web1", 80, o)).toBe(`${o}/port/web1/8080/`);
    expect(P.rewriteLocation("http://10.0.1.100/a", "web1", 80, o)).toBe("http://10.0.1.100/a"); // not known to be web1
    expect(P.rewriteLocation("https://example.org/", "web1", 80, o)).toBe("https://example.org/");
    expect(P.rewriteLocation("other.html", "web1", 80, o)).toBe("other.html");
    expect(P.rewriteLocation("//evil.example/x", "web1", 80, o)).toBe("//evil.example/x");
  });
});
