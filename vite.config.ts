// The Tabvisor page (index.html, web/src) and its VM workers (web/workers). The dev server and `vite preview`
// send the two headers that make the page cross-origin isolated, which SharedArrayBuffer (guest RAM, console
// rings) needs; a static build elsewhere gets them from public/coi-serviceworker.js (see web/README.md).
import { defineConfig, type Connect, type Plugin } from "vite";
import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";

const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
};

/** Serves *.gz files (the initramfs) as the bytes they are: vite's static server would label them
 *  Content-Encoding: gzip, the browser would unpack them, and their size and sha256 would no longer match
 *  public/images/manifest.json. (A preset header wins over the static server's own.) */
function gzipAsFile(): Plugin {
  const mw: Connect.NextHandleFunction = (req, res, next) => {
    if (/\.gz$/.test((req.url ?? "").split("?")[0])) {
      res.setHeader("Content-Encoding", "identity");
      res.setHeader("Content-Type", "application/gzip");
    }
    next();
  };
  return {
    name: "tabvisor-gzip-as-file",
    configureServer: (server) => { server.middlewares.use(mw); },
    configurePreviewServer: (server) => { server.middlewares.use(mw); },
  };
}

export default defineConfig({
  // relative asset paths: a build works from any sub-path of a static host
  base: "./",
  plugins: [react(), gzipAsFile()],
  server: { headers: isolation },
  preview: { headers: isolation },
  worker: { format: "es" },
  // Known up front so the first page load is not interrupted by a dependency re-optimisation and reload
  // (the worker's imports are not found by vite's scan of index.html).
  optimizeDeps: {
    include: ["react", "react-dom", "react-dom/client", "react/jsx-runtime", "react/jsx-dev-runtime", "@xterm/xterm", "@xterm/addon-fit", "comlink"],
  },
  build: {
    outDir: "dist", target: "es2022", chunkSizeWarningLimit: 1024,
    // the dashboard, and the network lab page (web/net/README.md)
    rollupOptions: {
      input: {
        main: fileURLToPath(new URL("./index.html", import.meta.url)),
        "network-lab": fileURLToPath(new URL("./web/network-lab.html", import.meta.url)),
      },
    },
  },
});
