// One row per network card: which network it is plugged into (or none), its link (up/down, delay, loss) and its
// meters (rates and totals from the VM worker's counters).

import { useEffect, useState } from "react";
import type { CardInfo, NetworkHub } from "../../net/hub.ts";
import { bitRate, bytes, count, packetRate } from "./format.ts";

function NumberField({ value, onCommit, testId, min, max, step, title }: {
  value: number; onCommit: (v: number) => void; testId: string; min: number; max?: number; step: number; title: string;
}) {
  const [text, setText] = useState(String(value));
  useEffect(() => { setText(String(value)); }, [value]);
  const commit = () => {
    const v = Number(text);
    if (text.trim() !== "" && Number.isFinite(v) && v >= min && (max === undefined || v <= max)) { if (v !== value) onCommit(v); }
    else setText(String(value));
  };
  return (
    <input type="number" className="net-num" data-testid={testId} title={title} min={min} max={max} step={step} value={text}
      onChange={(e) => setText(e.target.value)} onBlur={commit} onKeyDown={(e) => { if (e.key === "Enter") commit(); }} />
  );
}

export interface LinkControlsProps {
  hub: NetworkHub;
  cards: CardInfo[];
  networks: string[];
  selected?: string;
  onSelect?: (cardId: string) => void;
}

export function LinkControls({ hub, cards, networks, selected, onSelect }: LinkControlsProps) {
  const [error, setError] = useState<string>();
  const act = (p: Promise<unknown> | (() => Promise<unknown>)) => {
    setError(undefined);
    try {
      void (typeof p === "function" ? p() : p).catch((e: Error) => setError(e.message));
    } catch (e) { setError((e as Error).message); }
  };
  if (cards.length === 0) return <p className="net-empty">No network cards yet.</p>;
  return (
    <div className="net-links">
      {error && <div className="net-error" role="alert">{error}</div>}
      <table className="net-table" data-testid="net-links">
        <thead>
          <tr>
            <th>VM</th><th>card</th><th>MAC</th><th>network</th><th>link</th><th title="one-way delay, each direction">delay ms</th>
            <th title="probability a frame is lost, each direction">loss %</th><th>tx</th><th>rx</th><th>totals</th>
          </tr>
        </thead>
        <tbody>
          {cards.map((c) => (
            <tr key={c.id} data-testid={`link-${c.id}`} className={selected === c.id ? "selected" : undefined} onClick={() => onSelect?.(c.id)}>
              <td>{c.vm}</td>
              <td>{c.name}</td>
              <td className="mono">{c.mac}</td>
              <td>
                <select data-testid={`link-net-${c.id}`} value={c.network ?? ""} onChange={(e) => act(() => hub.plug(c.id, e.target.value || null))}>
                  <option value="">(unplugged)</option>
                  {networks.map((n) => <option key={n} value={n}>{n}</option>)}
                </select>
              </td>
              <td>
                <button data-testid={`link-toggle-${c.id}`} className={c.link.up ? "net-up" : "net-down"}
                  onClick={() => act(hub.setLink(c.id, { up: !c.link.up }))} title={c.link.up ? "bring the link down" : "bring the link up"}>
                  {c.link.up ? "up" : "down"}
                </button>
              </td>
              <td><NumberField testId={`link-delay-${c.id}`} value={c.link.delayMs} min={0} max={10_000} step={1} title="delay (ms)"
                onCommit={(v) => act(hub.setLink(c.id, { delayMs: v }))} /></td>
              <td><NumberField testId={`link-loss-${c.id}`} value={+(c.link.loss * 100).toFixed(2)} min={0} max={100} step={1} title="loss (%)"
                onCommit={(v) => act(hub.setLink(c.id, { loss: v / 100 }))} /></td>
              <td className="num" data-testid={`meter-tx-${c.id}`}>{bitRate(c.rates.txBytesPerSec)}<br /><small>{packetRate(c.rates.txPacketsPerSec)}</small></td>
              <td className="num" data-testid={`meter-rx-${c.id}`}>{bitRate(c.rates.rxBytesPerSec)}<br /><small>{packetRate(c.rates.rxPacketsPerSec)}</small></td>
              <td className="num small" title={`dropped: ${c.counters.txDropped} sent, ${c.counters.rxDropped} received`}>
                ↑ {count(c.counters.txPackets)} / {bytes(c.counters.txBytes)}<br />↓ {count(c.counters.rxPackets)} / {bytes(c.counters.rxBytes)}
                {(c.counters.txDropped > 0 || c.counters.rxDropped > 0) && <><br /><span className="net-warn">drops {c.counters.txDropped}/{c.counters.rxDropped}</span></>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
