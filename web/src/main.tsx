import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App, ProblemView } from "./App.tsx";
import { checkEnvironment } from "./environment.ts";
import "./styles.css";

declare global {
  // set by public/coi-serviceworker.js while it installs the service worker that will reload this page isolated
  interface Window { coiReloading?: boolean }
}

const root = createRoot(document.getElementById("root")!);
const problem = checkEnvironment();
if (problem) {
  const none = () => undefined;
  window.tabvisor = {
    state: () => "failed", text: () => "", stats: async () => undefined, vms: () => [], select: none, selected: none,
    textOf: () => "", stateOf: none, readyOf: () => false, handleOf: none, meters: none, host: none,
    create: () => "this page cannot run VMs", echoLatency: () => Promise.reject(new Error("this page cannot run VMs")),
  };
  const showProblem = () => root.render(<ProblemView problem={problem} />);
  if (window.coiReloading) {
    root.render(<div className="loading">Enabling cross-origin isolation (installing a service worker, then reloading)…</div>);
    window.addEventListener("coi-failed", showProblem);
  } else {
    showProblem();
  }
} else {
  root.render(<StrictMode><App /></StrictMode>);
}
