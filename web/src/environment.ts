// Can this browser run a VM here? SharedArrayBuffer (guest RAM and the console rings) exists only on a
// cross-origin isolated page, which takes two response headers (or the service worker that adds them).

export interface EnvironmentProblem {
  title: string;
  detail: string;
  fix: string;
}

export function checkEnvironment(): EnvironmentProblem | undefined {
  if (typeof WebAssembly !== "object" || typeof Worker !== "function") {
    return {
      title: "This browser cannot run Tabvisor",
      detail: "Tabvisor needs WebAssembly and Web Workers, and this browser lacks them (or they are disabled).",
      fix: "Use a current version of Chrome, Edge, Firefox or Safari.",
    };
  }
  if (typeof SharedArrayBuffer === "undefined" || !globalThis.crossOriginIsolated) {
    const insecure = !globalThis.isSecureContext;
    return {
      title: "This page is not cross-origin isolated, so SharedArrayBuffer is unavailable",
      detail:
        "Each VM keeps its RAM and its console buffers in a SharedArrayBuffer, which browsers only allow on pages served with " +
        "the headers Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp." +
        (insecure
          ? " This page was also loaded over plain HTTP from a host other than localhost, so neither the isolation nor the service worker that would provide it can work here."
          : " The service worker that adds those headers on static hosts did not take effect (service workers may be disabled, e.g. in a private window)."),
      fix: insecure
        ? "Open the page over HTTPS, or at http://localhost / http://127.0.0.1, served by `npm start` (dev server) or `npm run preview`."
        : "Serve the page with those two headers (`npm start` and `npm run preview` do), or allow service workers for this site and reload.",
    };
  }
  return undefined;
}
