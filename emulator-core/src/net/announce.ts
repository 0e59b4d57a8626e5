// After a live migration the network must learn where the machine's MAC lives now: until the guest happens to send
// something, switches would keep sending its frames to the port (or tab) it left. Like QEMU's announce after a
// migration, the host sends a few broadcast RARP requests from the card's MAC in the guest's place (the guest's own
// ARP and IP state is unchanged, and RARP asks nothing of anyone here: every switch on the way just learns the MAC).

import { BROADCAST_MAC, writeU16 } from "./packet.ts";

export const ETHERTYPE_RARP = 0x8035;
const RARP_REQUEST_REVERSE = 3;

/** A broadcast RARP "request reverse" frame from `mac` (60 bytes: the Ethernet minimum, padded with zeros). */
export function announceFrame(mac: ArrayLike<number>): Uint8Array {
  const f = new Uint8Array(60);
  f.set(BROADCAST_MAC, 0);
  f.set(mac, 6);
  writeU16(f, 12, ETHERTYPE_RARP);
  writeU16(f, 14, 1);           // hardware: Ethernet
  writeU16(f, 16, 0x0800);      // protocol: IPv4
  f[18] = 6;                    // hardware address length
  f[19] = 4;                    // protocol address length
  writeU16(f, 20, RARP_REQUEST_REVERSE);
  f.set(mac, 22);               // sender hardware address (sender IP stays 0.0.0.0)
  f.set(mac, 32);               // target hardware address: whose IP is asked for (target IP 0.0.0.0)
  return f;
}

/** Delays (ms after the first, sent as the machine starts) of the repeated announcements: a lost one is made up
 *  by the next. */
export const ANNOUNCE_DELAYS_MS = [50, 200, 500];
