// The A extension. LR/SC and the AMOs use wasm atomic instructions on the shared memory, so harts running in
// different workers see each other's operations atomically. SC succeeds when the reservation is still held and
// memory still holds the value LR read (a compare-and-swap; a store of the same value by another hart in between
// is not detected, which the ISA permits for LR/SC sequences that meet its forward-progress constraints).

import * as O from "./ops";
import { E_RD, E_RS1, E_RS2 } from "./decode";
import {
  H, xregs, raise, setReservation, CAUSE_MISALIGNED_LOAD, CAUSE_MISALIGNED_STORE,
} from "./state";
import { amoAddress, lrAddress } from "./mmu";

@inline function sext32(v: u32): u64 { return <u64><i64><i32>v; }

export function execAtomic(op: u32, e: usize): void {
  const rd = <usize>load<u16>(e, E_RD);
  const va = load<u64>(xregs + <usize>load<u16>(e, E_RS1));
  const src = load<u64>(xregs + <usize>load<u16>(e, E_RS2));
  const isWord = op < O.OP_LR_D;
  const size: u32 = isWord ? 4 : 8;
  const kind = isWord ? op - O.OP_LR_W : op - O.OP_LR_D; // 0 LR, 1 SC, 2.. AMOs in ops.ts order
  if ((va & (size - 1)) != 0) {
    raise(kind == 0 ? CAUSE_MISALIGNED_LOAD : CAUSE_MISALIGNED_STORE, va);
    return;
  }
  if (kind == 0) {
    const host = lrAddress(va, size);
    if (H.exc) return;
    const v = isWord ? <u64>atomic.load<u32>(host) : atomic.load<u64>(host);
    setReservation(true, host, v);
    store<u64>(xregs + rd, isWord ? sext32(<u32>v) : v);
    return;
  }
  const host = amoAddress(va, size);
  if (H.exc) return;
  if (kind == 1) {
    let ok = false;
    if (H.reservationValid && H.reservationAddr == host) {
      if (isWord) ok = atomic.cmpxchg<u32>(host, <u32>H.reservationValue, <u32>src) == <u32>H.reservationValue;
      else ok = atomic.cmpxchg<u64>(host, H.reservationValue, src) == H.reservationValue;
    }
    setReservation(false, 0, 0);
    store<u64>(xregs + rd, ok ? 0 : 1);
    return;
  }
  let old: u64;
  if (isWord) {
    const s = <u32>src;
    let o: u32;
    switch (kind) {
      case 2: o = atomic.xchg<u32>(host, s); break;
      case 3: o = atomic.add<u32>(host, s); break;
      case 4: o = atomic.xor<u32>(host, s); break;
      case 5: o = atomic.and<u32>(host, s); break;
      case 6: o = atomic.or<u32>(host, s); break;
      default: {
        // min/max: compare-and-swap loop
        o = atomic.load<u32>(host);
        while (true) {
          let n: u32;
          if (kind == 7) n = <i32>o < <i32>s ? o : s;
          else if (kind == 8) n = <i32>o > <i32>s ? o : s;
          else if (kind == 9) n = o < s ? o : s;
          else n = o > s ? o : s;
          const seen = atomic.cmpxchg<u32>(host, o, n);
          if (seen == o) break;
          o = seen;
        }
      }
    }
    old = sext32(o);
  } else {
    switch (kind) {
      case 2: old = atomic.xchg<u64>(host, src); break;
      case 3: old = atomic.add<u64>(host, src); break;
      case 4: old = atomic.xor<u64>(host, src); break;
      case 5: old = atomic.and<u64>(host, src); break;
      case 6: old = atomic.or<u64>(host, src); break;
      default: {
        old = atomic.load<u64>(host);
        while (true) {
          let n: u64;
          if (kind == 7) n = <i64>old < <i64>src ? old : src;
          else if (kind == 8) n = <i64>old > <i64>src ? old : src;
          else if (kind == 9) n = old < src ? old : src;
          else n = old > src ? old : src;
          const seen = atomic.cmpxchg<u64>(host, old, n);
          if (seen == old) break;
          old = seen;
        }
      }
    }
  }
  store<u64>(xregs + rd, old);
}
