// CPU weights: how the page shares the host's cores among VMs that compete for them.
//
// Each VM worker enforces one number, its CPU cap (percent of one core; it runs the guest for cap% of every 100 ms
// window and sleeps the rest). The user sets a cap and a weight per VM. Once a second the page measures every
// VM's use and decides its effective cap:
//
//   capacity  = host cores x 100% x HOST_SHARE (the rest is left to the page itself and the browser)
//   demand(v) = the user's cap, if the VM used (nearly) all it was allowed in the last second (it wants more);
//               otherwise what it used
//   - If the demands fit in the capacity, nobody competes: every VM gets its user cap.
//   - Otherwise the capacity is shared by weight, max-min fair ("water filling"): each VM is offered
//     capacity x weight / (sum of the weights still in play); a VM that needs less than its offer keeps what it
//     needs and leaves the game, and the capacity it left is offered again to the rest by weight, until every
//     remaining VM wants at least its offer; those get their offer.
//   effective cap(v) = min(user cap, its share) for VMs that want more. VMs that need less than their offer are
//   not held to what they used: they keep at least their plain fair share (capacity x weight / all weights) and
//   their use plus some headroom, so one that wakes up can grow at once (until the next second's sharing).
//
// With equal weights and four busy VMs on two cores, each gets about 45%; with weights 300 and 100, about 67% and
// 22%. A worker that is held back by its cap sleeps (Atomics.wait), so the CPU it does not get is really free.

export const HOST_SHARE = 0.9;
/** Nobody is capped below this (percent of a core): a VM always makes some progress. */
export const MIN_SHARE = 2;
/** What a VM that wants no more than it used may use beyond that until the next sharing (percent of a core). */
export const HEADROOM = 5;

export interface SchedVm {
  id: number;
  /** the user's cap, percent of one core */
  cap: number;
  weight: number;
  /** percent of a core used in the last second */
  used: number;
  /** its effective cap last second */
  allowed: number;
  /** the worker held it back for its cap during the last second */
  throttled: boolean;
}

/** Effective caps (percent of one core) by VM id, for `cores` host cores. */
export function shareCpu(vms: SchedVm[], cores: number): Map<number, number> {
  const capacity = Math.max(1, cores) * 100 * HOST_SHARE;
  const out = new Map<number, number>();
  const wants = (v: SchedVm) => v.throttled || v.used >= 0.9 * v.allowed;
  const demand = new Map<number, number>();
  for (const v of vms) demand.set(v.id, wants(v) ? v.cap : Math.min(v.cap, v.used));
  const total = vms.reduce((s, v) => s + demand.get(v.id)!, 0);
  if (total <= capacity) {
    for (const v of vms) out.set(v.id, v.cap);
    return out;
  }
  const allWeights = vms.reduce((s, v) => s + v.weight, 0);
  let left = capacity;
  let playing = [...vms];
  for (;;) {
    const w = playing.reduce((s, v) => s + v.weight, 0);
    const satisfied = playing.filter((v) => demand.get(v.id)! <= (left * v.weight) / w);
    if (satisfied.length === 0 || satisfied.length === playing.length) break;
    for (const v of satisfied) {
      left -= demand.get(v.id)!;
      const fair = (capacity * v.weight) / allWeights;
      out.set(v.id, Math.min(v.cap, Math.max(demand.get(v.id)! + HEADROOM, fair)));
    }
    playing = playing.filter((v) => !satisfied.includes(v));
  }
  const w = playing.reduce((s, v) => s + v.weight, 0);
  for (const v of playing) {
    const share = (left * v.weight) / w;
    const fair = (capacity * v.weight) / allWeights;
    out.set(v.id, Math.max(MIN_SHARE, Math.min(v.cap, demand.get(v.id)! <= share ? Math.max(share, fair, demand.get(v.id)! + HEADROOM) : share)));
  }
  return out;
}
