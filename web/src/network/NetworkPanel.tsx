// The network panel for the dashboard: the topology drawing, the cards' links and meters, and per network its
// switch (ports, MAC table, leases) and live capture with .pcap download. Everything comes from a NetworkHub
// (web/net/hub.ts): <NetworkPanel hub={hub} />.

import { useEffect, useState } from "react";
import type { HubState, NetworkHub } from "../../net/hub.ts";
import { Topology, networkColor } from "./Topology.tsx";
import { LinkControls } from "./LinkControls.tsx";
import { SwitchView } from "./SwitchView.tsx";
import { CaptureList } from "./CaptureList.tsx";
import "./network.css";

const pageHidden = () => document.visibilityState === "hidden";

/** The hub's state (polls arrive about once a second, a watched capture's a few times a second): the caller
 *  re-renders with it at most once per animation frame however busy the network, and not at all while the page is
 *  hidden (it catches up when the page shows again). */
export function useHubState(hub: NetworkHub): HubState {
  const [state, setState] = useState(hub.getState);
  useEffect(() => {
    let frame = 0;
    const show = () => { frame = 0; if (!pageHidden()) setState(hub.getState()); };
    const changed = () => { if (!frame && !pageHidden()) frame = requestAnimationFrame(show); };
    const off = hub.subscribe(changed);
    document.addEventListener("visibilitychange", changed);
    changed();
    return () => { off(); document.removeEventListener("visibilitychange", changed); if (frame) cancelAnimationFrame(frame); };
  }, [hub]);
  return state;
}

/** Whether the page is hidden (another tab in front, minimized), kept current. */
export function usePageHidden(): boolean {
  const [hidden, setHidden] = useState(pageHidden);
  useEffect(() => {
    const on = () => setHidden(pageHidden());
    document.addEventListener("visibilitychange", on);
    return () => document.removeEventListener("visibilitychange", on);
  }, []);
  return hidden;
}

export interface NetworkPanelProps {
  hub: NetworkHub;
  /** show the form that creates networks (default true) */
  allowCreate?: boolean;
}

export function NetworkPanel({ hub, allowCreate = true }: NetworkPanelProps) {
  const state = useHubState(hub);
  const [selectedCard, setSelectedCard] = useState<string>();
  const [tab, setTab] = useState<string>();
  const names = state.networks.map((n) => n.name);
  const current = state.networks.find((n) => n.name === tab) ?? state.networks[0];

  return (
    <div className="net-panel" data-testid="network-panel">
      <div className="net-top">
        <Topology state={state} selected={selectedCard} onSelect={setSelectedCard} />
        {allowCreate && <NewNetwork hub={hub} taken={names} />}
      </div>
      <LinkControls hub={hub} cards={state.cards} networks={names} selected={selectedCard} onSelect={setSelectedCard} />
      {state.networks.length > 0 && (
        <div className="net-tabs" role="tablist">
          {state.networks.map((n) => (
            <button key={n.name} role="tab" aria-selected={n === current} data-testid={`net-tab-${n.name}`}
              className={n === current ? "active" : undefined} style={{ borderBottomColor: networkColor(names, n.name) }}
              onClick={() => setTab(n.name)}>
              {n.name}
            </button>
          ))}
        </div>
      )}
      {current && (
        <div className="net-detail" data-testid={`net-detail-${current.name}`}>
          <SwitchView network={current} />
          <CaptureList key={current.name} hub={hub} network={current} />
        </div>
      )}
    </div>
  );
}

function NewNetwork({ hub, taken }: { hub: NetworkHub; taken: string[] }) {
  const next = taken.length + 1;
  const [name, setName] = useState("");
  const [gateway, setGateway] = useState("");
  const [shared, setShared] = useState(true);
  const [error, setError] = useState<string>();
  const create = () => {
    setError(undefined);
    try {
      hub.createNetwork({ name: name.trim() || `net${next}`, gateway: gateway.trim() || `10.0.${next}.1/24`, shared });
      setName("");
      setGateway("");
    } catch (e) { setError((e as Error).message); }
  };
  return (
    <form className="net-new" onSubmit={(e) => { e.preventDefault(); create(); }}>
      <strong>New network</strong>
      <input placeholder={`net${next}`} value={name} onChange={(e) => setName(e.target.value)} aria-label="name" />
      <input placeholder={`10.0.${next}.1/24`} value={gateway} onChange={(e) => setGateway(e.target.value)} aria-label="gateway address/prefix" />
      <label><input type="checkbox" checked={shared} onChange={(e) => setShared(e.target.checked)} /> shared with other tabs</label>
      <button type="submit">Create</button>
      {error && <div className="net-error" role="alert">{error}</div>}
    </form>
  );
}
