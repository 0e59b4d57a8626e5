// The "New VM" dialog: name, memory, image, CPU cap and weight, disk, boot arguments, the JIT. Settings the VM cannot
// have are refused here with the reason (see lab.ts: checkSpec, probeMemory), before any worker starts.

import { useEffect, useRef, useState } from "react";
import type { Hypervisor } from "./hypervisor.ts";
import { maxCards } from "./labs/validate.ts";
import { IMAGES, DISK_SIZES_MIB, MAX_RAM_MIB, MIN_RAM_MIB, checkSpec, imageInfo, probeMemory, newSpec, type VmSpec } from "./lab.ts";

function freeName(taken: string[]): string {
  for (let i = 1; ; i++) if (!taken.includes(`vm${i}`)) return `vm${i}`;
}

export function CreateVmDialog({ hv, onClose }: { hv: Hypervisor; onClose: (createdId?: number) => void }) {
  const taken = hv.entries.map((e) => e.spec.name);
  const [name, setName] = useState(() => freeName(taken));
  const [ram, setRam] = useState("64");
  const [image, setImage] = useState(IMAGES[0].id);
  const [cap, setCap] = useState("100");
  const [weight, setWeight] = useState("100");
  const [disk, setDisk] = useState("0");
  const [bootArgs, setBootArgs] = useState("");
  const [start, setStart] = useState(true);
  // the JIT unless the user turns it off (the interpreter: for debugging and comparison)
  const [jit, setJit] = useState(true);
  // its cards, eth0 first: the network each is plugged into ("": none)
  const networks = hv.networkNames();
  const [cards, setCards] = useState<string[]>(() => [networks.includes("lan") ? "lan" : networks[0] ?? ""]);

  const [error, setError] = useState<string>();
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => { first.current?.select(); }, []);

  const debian = hv.debian;
  const system = imageInfo(image)?.system;
  const systemMissing = system && "missing" in debian ? debian.missing : undefined;
  const mostCards = maxCards(system ? 1 : Number(disk));
  const pickImage = (id: string) => {
    const sys = imageInfo(id)?.system, was = imageInfo(image)?.system;
    setImage(id);
    // memory follows the image while the user has not chosen any
    if (sys && Number(ram) === 64) setRam(String(sys.ramMiB));
    if (!sys && was && Number(ram) === was.ramMiB) setRam("64");
  };

  const submit = (ev: React.FormEvent) => {
    ev.preventDefault();
    if (systemMissing) { setError(systemMissing); return; }
    const spec: VmSpec = newSpec(name.trim(), {
      ramMiB: Number(ram), image, cpuCap: Number(cap), weight: Number(weight), bootArgs,
      diskMiB: system && "id" in debian ? debian.manifest.size / 1048576 : Number(disk),
      ...(jit ? { jit: true } : {}),
    });
    const why = checkSpec(spec, taken) ?? probeMemory(spec.ramMiB) ??
      (cards.length > mostCards ? `Cards: at most ${mostCards} with ${system || Number(disk) > 0 ? "a disk" : "no disk"} (the board's device slots).` : undefined);
    if (why) { setError(why); return; }
    const e = hv.create(spec, start, networks.length ? { cards: cards.map((n) => ({ network: n === "" ? null : n })) } : {});
    onClose(e.id);
  };

  return (
    <div className="modal-back" onMouseDown={(ev) => { if (ev.target === ev.currentTarget) onClose(); }}>
      <form className="modal" onSubmit={submit} data-testid="create-dialog" onKeyDown={(ev) => { if (ev.key === "Escape") onClose(); }}>
        <h2>New VM</h2>
        <label>
          <span>Name <span className="muted">(also its hostname)</span></span>
          <input ref={first} data-testid="create-name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" spellCheck={false} />
        </label>
        <div className="form-row">
          <label>
            <span>Memory <span className="muted">MiB, {MIN_RAM_MIB}–{MAX_RAM_MIB}</span></span>
            <input data-testid="create-ram" type="number" value={ram} onChange={(e) => setRam(e.target.value)} />
          </label>
          <label>
            <span>Disk</span>
            {system
              ? <select data-testid="create-disk" disabled value="system"><option value="system">the image's ({"id" in debian ? `${debian.manifest.size / 2 ** 30} GiB` : "2 GiB"})</option></select>
              : <select data-testid="create-disk" value={disk} onChange={(e) => setDisk(e.target.value)}>
                  {DISK_SIZES_MIB.map((d) => <option key={d} value={d}>{d === 0 ? "none" : `${d} MiB`}</option>)}
                </select>}
          </label>
        </div>
        <label>
          <span>Image</span>
          <select data-testid="create-image" value={image} onChange={(e) => pickImage(e.target.value)}>
            {IMAGES.map((i) => <option key={i.id} value={i.id}>{i.label}{i.system && "missing" in debian ? " (not built)" : ""}</option>)}
          </select>
        </label>
        {system && (systemMissing
          ? <div className="form-error" data-testid="create-image-missing">{systemMissing}</div>
          : <div className="muted" data-testid="create-image-note">
              sshd, nginx, python3, PostgreSQL, nftables and more. The disk is fetched as the guest reads it (about 8 MB
              to the first prompt) and kept in the browser's cache; what the VM writes is its own.
            </div>)}
        <div className="form-row">
          <label>
            <span>CPU cap <span className="muted">% of a core</span></span>
            <input data-testid="create-cap" type="number" value={cap} onChange={(e) => setCap(e.target.value)} />
          </label>
          <label>
            <span>CPU weight</span>
            <input data-testid="create-weight" type="number" value={weight} onChange={(e) => setWeight(e.target.value)} />
          </label>
        </div>
        {networks.length > 0 && (
          <div className="form-cards" data-testid="create-cards">
            <span>Network cards <span className="muted">eth0, eth1, … and the network each is plugged into</span></span>
            {cards.map((n, i) => (
              <div key={i} className="form-row">
                <span className="muted">eth{i}</span>
                <select data-testid={`create-card-${i}`} value={n} onChange={(e) => setCards(cards.map((c, j) => (j === i ? e.target.value : c)))}>
                  {networks.map((x) => <option key={x} value={x}>{x}</option>)}
                  <option value="">not plugged in</option>
                </select>
                {cards.length > 1 && <button type="button" title="Remove this card" onClick={() => setCards(cards.filter((_, j) => j !== i))}>−</button>}
              </div>
            ))}
            {cards.length < mostCards && <button type="button" data-testid="create-add-card" onClick={() => setCards([...cards, networks[0]])}>+ card</button>}
          </div>
        )}
        <label>
          <span>Boot arguments <span className="muted">added to the kernel command line</span></span>
          <input data-testid="create-bootargs" value={bootArgs} placeholder="e.g. tabvisor.ip=10.0.0.5/24" onChange={(e) => setBootArgs(e.target.value)} spellCheck={false} />
        </label>
        <label className="check" title="for debugging and comparison; it can be changed later in the VM's Resources (from its next start)">
          <input type="checkbox" data-testid="create-jit" checked={jit} onChange={(e) => setJit(e.target.checked)} /> JIT
          <span className="muted">compile hot guest code to WebAssembly (off: the interpreter)</span>
        </label>
        <label className="check">
          <input type="checkbox" checked={start} onChange={(e) => setStart(e.target.checked)} /> Start it now
        </label>
        {error && <div className="form-error" role="alert" data-testid="create-error">{error}</div>}
        <div className="modal-actions">
          <button type="button" onClick={() => onClose()}>Cancel</button>
          <button type="submit" className="primary" data-testid="create-submit">Create</button>
        </div>
      </form>
    </div>
  );
}
