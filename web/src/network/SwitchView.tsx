// One network's switch: its ports with their counters and drops, the learned MAC table, and the gateway's leases
// and DNS names.

import type { NetworkInfo } from "../../net/hub.ts";
import { bytes, count } from "./format.ts";

export function SwitchView({ network }: { network: NetworkInfo }) {
  const s = network.snapshot;
  if (!s) return <p className="net-empty">{network.error ? `The switch failed: ${network.error}` : "Starting the switch…"}</p>;
  return (
    <div className="net-switch">
      <div className="net-muted">
        gateway {s.gateway} · domain {s.domain} · {s.gatewayHere ? "gateway (DHCP, DNS) runs in this tab" : "gateway runs in another tab"}
        {s.peers > 0 ? ` · shared with ${s.peers} other tab${s.peers > 1 ? "s" : ""}` : ""}
        {" · "}forwarded {count(s.counters.forwarded)}, flooded {count(s.counters.flooded)}
      </div>
      <div className="net-cols">
        <section>
          <h4>Ports</h4>
          <table className="net-table" data-testid={`ports-${network.name}`}>
            <thead><tr><th>#</th><th>port</th><th>link</th><th>in</th><th>out</th><th>dropped</th></tr></thead>
            <tbody>
              {s.ports.map((p) => {
                const d = p.counters.drops;
                const why = Object.entries(d).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(", ");
                return (
                  <tr key={p.id}>
                    <td className="num">{p.id}</td>
                    <td>{p.name}</td>
                    <td>{p.link.up ? "up" : "down"}{p.link.delayMs ? ` ${p.link.delayMs} ms` : ""}{p.link.loss ? ` ${+(p.link.loss * 100).toFixed(1)}%` : ""}</td>
                    <td className="num">{count(p.counters.rxPackets)} / {bytes(p.counters.rxBytes)}</td>
                    <td className="num">{count(p.counters.txPackets)} / {bytes(p.counters.txBytes)}</td>
                    <td className="num" title={why}>{p.counters.rxDropped + p.counters.txDropped}{why ? <small> ({why})</small> : null}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
        <section>
          <h4>MAC table</h4>
          <table className="net-table" data-testid={`mactable-${network.name}`}>
            <thead><tr><th>MAC</th><th>port</th><th>age</th></tr></thead>
            <tbody>
              {s.macTable.map((e) => (
                <tr key={e.mac}><td className="mono">{e.mac}</td><td>{e.portName}</td><td className="num">{(e.ageMs / 1000).toFixed(0)} s</td></tr>
              ))}
            </tbody>
          </table>
          {s.macTable.length === 0 && <p className="net-empty">Nothing learned yet.</p>}
        </section>
        <section>
          <h4>DHCP leases and names</h4>
          <table className="net-table" data-testid={`leases-${network.name}`}>
            <thead><tr><th>name</th><th>address</th><th>MAC</th><th>state</th></tr></thead>
            <tbody>
              {s.leases.map((l) => (
                <tr key={l.mac}><td>{l.hostname ?? ""}</td><td className="mono">{l.ip}</td><td className="mono">{l.mac}</td><td>{l.state}</td></tr>
              ))}
              {s.hosts.filter((h) => h.source !== "dhcp").map((h) => (
                <tr key={`h-${h.name}`}><td>{h.name}</td><td className="mono">{h.ip}</td><td></td><td>{h.source}</td></tr>
              ))}
            </tbody>
          </table>
        </section>
      </div>
    </div>
  );
}
