// The network panel for the dashboard: the topology drawing, the cards' links and meters, and per network its
// switch (ports, MAC table, leases) and live capture with .pcap download. Everything comes from a NetworkHub
// (web/net/hub.ts): <NetworkPanel hub={hub} />.

import { useState, useSyncExternalStore } from "react";
import type { HubState, NetworkHub } from "../../net/hub.ts";
import { Topology, networkColor } from "./Topology.tsx";
import { LinkControls } from "./LinkControls.tsx";
import { SwitchView } from "./SwitchView.tsx";
import { CaptureList } from "./CaptureList.tsx";
import "./network.css";

/** The hub's state, re-rendering on every change (polls arrive about once a second). */
export function useHubState(hub: NetworkHub): HubState {
  return useSyncExternalStore(hub.subscribe, hub.getState);
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
