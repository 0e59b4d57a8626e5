// A network's packet capture, live: time, port, source, destination, protocol, length and a one-line summary of
// each frame the switch forwarded (summarizeFrame), a filter, and the capture as a .pcap download.

import { useEffect, useLayoutEffect, useRef, useState } from "react";
import type { NetworkHub, NetworkInfo } from "../../net/hub.ts";
import { usePageHidden } from "./NetworkPanel.tsx";

const SHOWN = 300;

export function CaptureList({ hub, network }: { hub: NetworkHub; network: NetworkInfo }) {
  const [live, setLive] = useState(true);
  const [filter, setFilter] = useState("");
  const [error, setError] = useState<string>();
  const box = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const name = network.name;

  // the list is fetched while it is live and can be seen: a hidden page stops the polling (the switch goes on
  // capturing; the list catches up when the page shows again)
  const hidden = usePageHidden();
  useEffect(() => (live && !hidden ? hub.watchCapture(name) : undefined), [hub, name, live, hidden]);

  const portName = new Map((network.snapshot?.ports ?? []).map((p) => [p.id, p.name]));
  const f = filter.trim().toLowerCase();
  const all = network.capture;
  const rows = (f ? all.filter((s) => `${s.src} ${s.dst} ${s.protocol} ${s.info} ${portName.get(s.port) ?? ""}`.toLowerCase().includes(f)) : all).slice(-SHOWN);
  const t0 = all.length ? all[0].time : 0;

  useLayoutEffect(() => {
    const el = box.current;
    if (el && atBottom.current) el.scrollTop = el.scrollHeight;
  });

  const download = () => { setError(undefined); hub.downloadPcap(name).catch((e: Error) => setError(e.message)); };
  const cap = network.snapshot?.capture;

  return (
    <div className="net-capture" data-testid={`capture-${name}`}>
      <div className="net-capture-bar">
        <strong>Capture</strong>
        <span className="net-muted" data-testid={`capture-count-${name}`}>
          {cap ? `${cap.total} frames captured, ${cap.size} kept` : "…"}{cap && !cap.enabled ? " (off)" : ""}
        </span>
        <input placeholder="filter (address, protocol, text)" value={filter} onChange={(e) => setFilter(e.target.value)} className="net-filter" />
        <button onClick={() => setLive(!live)} data-testid={`capture-live-${name}`}>{live ? "Pause list" : "Resume list"}</button>
        <button onClick={() => void hub.clearCapture(name)}>Clear</button>
        {cap && <button onClick={() => void hub.setCapture(name, !cap.enabled)}>{cap.enabled ? "Stop capturing" : "Capture"}</button>}
        <button onClick={download} data-testid={`capture-pcap-${name}`}>Download .pcap</button>
      </div>
      {error && <div className="net-error" role="alert">{error}</div>}
      <div className="net-capture-rows" ref={box}
        onScroll={(e) => { const el = e.currentTarget; atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 24; }}>
        <table className="net-table net-capture-table">
          <thead>
            <tr><th>No.</th><th>time</th><th>port</th><th>source</th><th>destination</th><th>protocol</th><th>length</th><th>info</th></tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <tr key={s.seq} className={`proto-${s.protocol}`}>
                <td className="num">{s.seq}</td>
                <td className="num">{((s.time - t0) / 1000).toFixed(3)}</td>
                <td>{portName.get(s.port) ?? s.port}</td>
                <td className="mono">{s.src}</td>
                <td className="mono">{s.dst}</td>
                <td>{s.protocol}</td>
                <td className="num">{s.length}</td>
                <td className="mono info">{s.info}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {rows.length === 0 && <p className="net-empty">{all.length ? "No frame matches the filter." : "No frames yet."}</p>}
      </div>
    </div>
  );
}
