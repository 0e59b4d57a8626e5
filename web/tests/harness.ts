// Browser-test plumbing: the vite dev server (or a static server for a build) on a free loopback port, and
// Debian's Chromium driven by playwright-core with a fresh profile. No browser is ever downloaded.

import { mkdtempSync, rmSync, existsSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, extname, resolve, sep } from "node:path";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { createServer, build, preview } from "vite";
import { chromium, type BrowserContext, type JSHandle, type Page } from "playwright-core";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export interface Served { url: string; close(): Promise<void> }

/** The dev server, as `npm run dev` runs it (with the isolation headers). */
export async function startDevServer(): Promise<Served> {
  const server = await createServer({
    root: ROOT,
    configFile: join(ROOT, "vite.config.ts"),
    logLevel: "warn",
    clearScreen: false,
    server: { host: "127.0.0.1", port: 0, strictPort: false, hmr: false, watch: null },
  });
  await server.listen();
  const addr = server.httpServer!.address() as AddressInfo;
  return { url: `http://127.0.0.1:${addr.port}/`, close: () => server.close() };
}

/** The production build served as `npm start` serves it (`vite preview`, with the isolation headers): what a
 *  user's browser runs, without the dev server's per-module loading and React's development checks (which cost an
 *  idle page twice the CPU: the energy figures are taken here). The build is made once per test process. */
let built: Promise<string> | undefined;
export async function startPreviewServer(): Promise<Served> {
  built ??= buildStatic().then((dir) => {
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  });
  const outDir = await built;
  const server = await preview({
    root: ROOT,
    configFile: join(ROOT, "vite.config.ts"),
    logLevel: "warn",
    build: { outDir },
    preview: { host: "127.0.0.1", port: 0, strictPort: false, open: false },
  });
  const addr = server.httpServer.address() as AddressInfo;
  return { url: `http://127.0.0.1:${addr.port}/`, close: () => new Promise<void>((r) => server.httpServer.close(() => r())) };
}

/** `vite build` into a temporary folder. */
export async function buildStatic(): Promise<string> {
  const outDir = mkdtempSync(join(tmpdir(), "tabvisor-dist-"));
  await build({ root: ROOT, configFile: join(ROOT, "vite.config.ts"), logLevel: "warn", build: { outDir, emptyOutDir: true } });
  return outDir;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
  ".wasm": "application/wasm", ".svg": "image/svg+xml",
};

/** A plain static file server that sends no isolation headers, like a static host that cannot set them. */
export async function serveStatic(dir: string): Promise<Served> {
  const base = resolve(dir);
  const server: Server = createHttpServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    let file = resolve(base, "." + path);
    if (file !== base && !file.startsWith(base + sep)) { res.writeHead(403).end(); return; }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, "index.html");
    if (!existsSync(file)) { res.writeHead(404).end("not found"); return; }
    res.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

export interface Browser { context: BrowserContext; page: Page; close(): Promise<void> }

/** Debian's Chromium, headless, with a new empty profile. */
export async function launchBrowser(opts: { blockServiceWorkers?: boolean } = {}): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)`);
  const profile = mkdtempSync(join(tmpdir(), "tabvisor-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic",
    ],
    viewport: { width: 1100, height: 700 },
    serviceWorkers: opts.blockServiceWorkers ? "block" : "allow",
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context, page,
    close: async () => { await context.close().catch(() => {}); rmSync(profile, { recursive: true, force: true }); },
  };
}

/** The terminal's text as the page's test hook reads it from the xterm buffer. */
export function terminalText(page: Page): Promise<string> {
  return page.evaluate(() => window.tabvisor?.text() ?? "");
}

/** Waits until the terminal text matches `re`; the error shows the end of the terminal. */
export async function waitForText(page: Page, re: RegExp, timeoutMs = 20_000): Promise<string> {
  const t0 = Date.now();
  for (;;) {
    // the page may be reloading under us (the service worker's first load does): read again after it
    const text = await terminalText(page).catch((e: Error) => {
      if (/context was destroyed|navigat/i.test(e.message)) return "";
      throw e;
    });
    if (re.test(text)) return text;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${re} in the terminal:\n${text.slice(-800)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const PROMPT = /^tabvisor:~# $/m;

/** Waits for the shell prompt (the page has downloaded the images and the guest has booted). */
export async function waitForPrompt(page: Page, timeoutMs = 30_000): Promise<void> {
  await waitForText(page, /^tabvisor:~#\s*$/m, timeoutMs);
}

/** Types a command line at the focused terminal, as a person would. */
export async function typeLine(page: Page, line: string): Promise<void> {
  await page.locator(".xterm").click();
  await page.keyboard.type(line);
  await page.keyboard.press("Enter");
}

let commandSeq = 0;
/** Types a command into a VM's console in the page (the dashboard's window.tabvisor) and resolves with its output,
 *  found between a numbered pair of markers (split where they are typed, so the echo of the line never matches). */
export async function consoleCommand(page: Page, vm: string, cmd: string, timeout = 20_000): Promise<string> {
  const n = ++commandSeq;
  await page.evaluate(([name, line]) => window.tabvisor!.handleOf(name)!.sendInput(line), [vm, `echo "@@B""EGIN${n}@@"; ${cmd}; echo "@@E""ND${n}@@"\n`]);
  const t0 = Date.now();
  for (;;) {
    const text = await page.evaluate((name) => window.tabvisor!.textOf(name), vm);
    const m = new RegExp(`^@@BEGIN${n}@@\\n([\\s\\S]*?)^@@END${n}@@$`, "m").exec(text);
    if (m) return m[1].replace(/\n$/, "");
    if (Date.now() - t0 > timeout) throw new Error(`${vm}: no answer to ${cmd}:\n${text.slice(-600)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The dev server and Chromium on the dashboard with an empty lab (?lab=); `errors` collects the page's uncaught
 *  errors. close() ends both. */
export async function openEmptyLab(opts: { built?: boolean } = {}): Promise<{ server: Served; browser: Browser; page: Page; errors: string[]; close(): Promise<void> }> {
  const server = opts.built ? await startPreviewServer() : await startDevServer();
  const browser = await launchBrowser();
  const page = browser.page;
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(server.url + "?lab=");
  await page.waitForFunction(() => window.tabvisor?.hv !== undefined);
  return { server, browser, page, errors, close: async () => { await browser.close(); await server.close(); } };
}

/** Drops a file whose bytes were made in the page on the element `selector`, as dragging it from the desktop would. */
export async function dropFile(page: Page, selector: string, name: string, bytes: JSHandle<Uint8Array>): Promise<void> {
  const dt = await page.evaluateHandle(([n, b]) => {
    const t = new DataTransfer();
    t.items.add(new File([b as Uint8Array<ArrayBuffer>], n));
    return t;
  }, [name, bytes] as const);
  await page.dispatchEvent(selector, "dragover", { dataTransfer: dt });
  await page.dispatchEvent(selector, "drop", { dataTransfer: dt });
}

/** Makes `specs` the saved lab (what the page keeps between visits: idb-keyval's default store), on a page of the
 *  app's origin; the next load of the page without ?lab= opens it. */
export async function setSavedLab(page: Page, specs: unknown[]): Promise<void> {
  await page.evaluate((value) => new Promise<void>((resolve, reject) => {
    const req = indexedDB.open("keyval-store");
    req.onupgradeneeded = () => req.result.createObjectStore("keyval");
    req.onerror = () => reject(req.error);
    req.onsuccess = () => {
      const db = req.result;
      const tx = db.transaction("keyval", "readwrite");
      tx.objectStore("keyval").put(value, "tabvisor.lab.v1");
      tx.oncomplete = () => { db.close(); resolve(); };
      tx.onerror = () => reject(tx.error);
    };
  }), specs);
}
