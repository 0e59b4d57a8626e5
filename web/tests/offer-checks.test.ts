// What a tab accepts from elsewhere (Node): a VM's settings however it is described (lab.ts checkSpec: a saved lab,
// a snapshot's machine, another tab's migration offer) and the offer itself (tabs/migrations.ts checkOffer).

import { describe, it, expect } from "vitest";
import { checkSpec, newSpec, type VmSpec } from "../src/lab.ts";
import { checkOffer, type MigrationOffer } from "../src/tabs/migrations.ts";
import { makeSpec } from "../../emulator-core/src/machine/description.ts";

const machine = makeSpec({ ramMiB: 64, cmdline: "console=ttyS0 hostname=m", nics: [{ mac: [0x52, 0x54, 0, 0, 0, 1] }, { mac: [0x52, 0x54, 0, 0, 0, 2] }] });

describe("settings from elsewhere", () => {
  it("a VM described by its machine still has its CPU, weight, balloon and boot arguments checked", () => {
    const base: VmSpec = { ...newSpec("m", { ramMiB: 64 }), machine };
    expect(checkSpec(base, [])).toBeUndefined();
    expect(checkSpec({ ...base, weight: NaN }, [])).toMatch(/CPU weight/);
    expect(checkSpec({ ...base, cpuCap: 1e9 }, [])).toMatch(/CPU cap/);
    expect(checkSpec({ ...base, balloonMiB: 1000 }, [])).toMatch(/Balloon/);
    expect(checkSpec({ ...base, bootArgs: "\u0000" }, [])).toMatch(/Boot arguments/);
    expect(checkSpec({ ...base, ramMiB: 128 }, [])).toMatch(/description says otherwise/);
    expect(checkSpec(base, ["M"])).toMatch(/already a VM named m/);
  });

  it("the JIT setting: on, off or absent (a lab saved before it existed); anything else is refused", () => {
    const spec = newSpec("j");
    expect(spec.jit).toBeUndefined(); // off unless asked for
    for (const jit of [true, false, undefined]) expect(checkSpec({ ...spec, jit }, [])).toBeUndefined();
    for (const jit of ["yes", 1, null, {}]) expect(checkSpec({ ...spec, jit } as unknown as VmSpec, [])).toBe("JIT: on or off (true or false).");
  });

  it("a migration offer: one card per card of the machine, each MAC once, settings only for the card's network", () => {
    const good: MigrationOffer = {
      kind: "migrate", channel: "tabvisor-migrate:x", paused: false, spec: { ...newSpec("m", { ramMiB: 64 }), machine },
      cards: [{ mac: "52:54:00:00:00:01", network: "lan", config: { name: "lan", gateway: "10.0.1.1/24" } }, { mac: "52:54:00:00:00:02", network: null }],
    };
    expect(checkOffer(good)).toEqual(good);
    const bad = (o: unknown) => () => checkOffer(o);
    expect(bad({ ...good, cards: good.cards.slice(0, 1) })).toThrow(/not understood \(cards\)/);
    expect(bad({ ...good, cards: [...good.cards, { mac: "52:54:00:00:00:03", network: null }] })).toThrow(/cards/);
    expect(bad({ ...good, cards: [good.cards[0], { ...good.cards[1], mac: good.cards[0].mac }] })).toThrow(/cards/);
    expect(bad({ ...good, cards: [{ ...good.cards[0], config: { name: "dmz" } }, good.cards[1]] })).toThrow(/cards/);
    expect(bad({ ...good, cards: [{ ...good.cards[0], mac: "not a mac" }, good.cards[1]] })).toThrow(/cards/);
    expect(bad({ ...good, channel: "elsewhere" })).toThrow(/channel/);
    expect(bad({ ...good, kind: "other" })).toThrow(/kind/);
    expect(bad(undefined)).toThrow(/kind/);
  });
});
