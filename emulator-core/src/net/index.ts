// The virtual network core: switches, the gateway service (ARP, ping, DHCP, DNS), packet helpers and capture.

export * from "./packet.ts";
export * from "./link.ts";
export * from "./switch.ts";
export * from "./gateway.ts";
export * from "./pcap.ts";
export * as dhcp from "./dhcp.ts";
export * as dns from "./dns.ts";
