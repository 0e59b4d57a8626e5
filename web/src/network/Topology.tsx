// The topology drawing: VMs on the left, networks on the right, one line per network card from its VM to its
// network (dashed when the link is down, labelled with delay and loss, and the card's current rate). Clicking a
// card's line selects it.

import type { CardInfo, HubState } from "../../net/hub.ts";
import { bitRate } from "./format.ts";

const PALETTE = ["#4e9af1", "#e0a84a", "#5cc489", "#d9679a", "#9c82e8", "#4cc3c9", "#e0744a", "#a3b84a"];

export function networkColor(names: string[], name: string | null): string {
  if (!name) return "#6b7580";
  const i = names.indexOf(name);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

const W = 680;
const VM_X = 12, VM_W = 150;
const NET_W = 190, NET_X = W - NET_W - 12;
const CARD_ROW = 26, VM_PAD = 26, GAP = 14, NET_H = 46;

export interface TopologyProps {
  state: HubState;
  selected?: string;
  onSelect?: (cardId: string) => void;
}

export function Topology({ state, selected, onSelect }: TopologyProps) {
  const netNames = state.networks.map((n) => n.name);
  const byVm = new Map<string, CardInfo[]>();
  for (const vm of state.vms) byVm.set(vm, []);
  for (const c of state.cards) (byVm.get(c.vm) ?? byVm.set(c.vm, []).get(c.vm)!).push(c);

  // VM boxes
  let y = 10;
  const vmBoxes = [...byVm.entries()].map(([vm, cards]) => {
    const h = VM_PAD + Math.max(1, cards.length) * CARD_ROW;
    const box = { vm, cards, y, h };
    y += h + GAP;
    return box;
  });
  const vmHeight = y;
  // network boxes, spread over the same height
  const netGap = Math.max(GAP, (vmHeight - 10 - netNames.length * NET_H) / Math.max(1, netNames.length));
  const netY = new Map<string, number>();
  let ny = 10 + Math.max(0, netGap - GAP) / 2;
  let bottom = 0;
  for (const n of netNames) { netY.set(n, ny); bottom = ny + NET_H; ny += NET_H + netGap; }
  const height = Math.max(vmHeight - GAP + 10, bottom + 10, 80);

  return (
    <svg className="net-topology" data-testid="net-topology" viewBox={`0 0 ${W} ${height}`} width="100%" style={{ maxWidth: W }}
      role="img" aria-label="network topology">
      {vmBoxes.flatMap(({ cards, y: vy }) => cards.map((c, i) => {
        const x1 = VM_X + VM_W, y1 = vy + VM_PAD + i * CARD_ROW + CARD_ROW / 2 - 4;
        const color = networkColor(netNames, c.network);
        const ty = c.network ? netY.get(c.network) : undefined;
        const down = !c.link.up || !c.network;
        const impaired = c.link.delayMs > 0 || c.link.loss > 0;
        const sel = selected === c.id;
        const rate = c.rates.txBytesPerSec + c.rates.rxBytesPerSec;
        let path: string, x2: number, y2: number;
        if (ty === undefined) {
          x2 = x1 + 60; y2 = y1;
          path = `M${x1},${y1} L${x2},${y2}`;
        } else {
          x2 = NET_X; y2 = ty + NET_H / 2;
          const mx = (x1 + x2) / 2;
          path = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
        }
        const label = [
          !c.network ? "unplugged" : !c.link.up ? "link down" : undefined,
          c.link.delayMs > 0 ? `${c.link.delayMs} ms` : undefined,
          c.link.loss > 0 ? `${+(c.link.loss * 100).toFixed(1)}% loss` : undefined,
          c.network && c.link.up && rate > 0 ? bitRate(rate) : undefined,
        ].filter(Boolean).join(" · ");
        const lx = ty === undefined ? x2 + 6 : (x1 + x2) / 2;
        const ly = ty === undefined ? y2 + 4 : (y1 + y2) / 2 - 5;
        return (
          <g key={c.id} className={`net-link${sel ? " selected" : ""}`} data-testid={`topo-link-${c.id}`}
            data-up={String(c.network !== null && c.link.up)} onClick={() => onSelect?.(c.id)} style={{ cursor: onSelect ? "pointer" : undefined }}>
            <path d={path} fill="none" stroke="transparent" strokeWidth={12} />
            <path d={path} fill="none" stroke={down ? "#6b7580" : color} strokeWidth={sel ? 4 : 2.5}
              strokeDasharray={down ? "6 5" : impaired ? "2 3" : undefined} />
            {ty === undefined && <text x={x2 - 2} y={y2 + 4} className="net-x">×</text>}
            {label && <text x={lx} y={ly} textAnchor={ty === undefined ? "start" : "middle"} className="net-link-label">{label}</text>}
            <circle cx={x1} cy={y1} r={4} fill={down ? "#6b7580" : color} />
          </g>
        );
      }))}
      {vmBoxes.map(({ vm, cards, y: vy, h }) => (
        <g key={vm} data-testid={`topo-vm-${vm}`}>
          <rect x={VM_X} y={vy} width={VM_W} height={h} rx={6} className="net-vm-box" />
          <text x={VM_X + 10} y={vy + 17} className="net-vm-name">{vm}</text>
          {cards.map((c, i) => (
            <text key={c.id} x={VM_X + 10} y={vy + VM_PAD + i * CARD_ROW + CARD_ROW / 2} className="net-card-label">
              {c.name} <tspan className="net-mac">{c.mac}</tspan>
            </text>
          ))}
          {cards.length === 0 && <text x={VM_X + 10} y={vy + VM_PAD + 13} className="net-card-label">no network card</text>}
        </g>
      ))}
      {state.networks.map((n) => {
        const ny2 = netY.get(n.name)!;
        const color = networkColor(netNames, n.name);
        const s = n.snapshot;
        return (
          <g key={n.name} data-testid={`topo-net-${n.name}`}>
            <rect x={NET_X} y={ny2} width={NET_W} height={NET_H} rx={6} className="net-net-box" style={{ stroke: color }} />
            <text x={NET_X + 10} y={ny2 + 18} className="net-net-name" style={{ fill: color }}>{n.name}</text>
            <text x={NET_X + 10} y={ny2 + 35} className="net-net-sub">
              gw {n.config.gateway ?? "10.0.0.1/24"}{s && s.peers > 0 ? ` · +${s.peers} tab${s.peers > 1 ? "s" : ""}` : ""}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
