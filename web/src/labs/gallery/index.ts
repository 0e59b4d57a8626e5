// The gallery: labs shipped with the app, listed on the page's first page. Each is a lab file beside this one
// (`<id>.lab.json`, format version 1: ../README.md); the page validates the one the user opens (parseLabText /
// validateLab) and builds it. `needsDebian`: some of its VMs run the Debian system image (lab.ts DEBIAN_IMAGE),
// which the page has only when it was built (npm run images:debian); the list says so. `npm run lab -- FILE
// --run-snippets` tests a lab headless; web/tests/lab-gallery.test.ts does so for every lab here.

import consolidation from "./consolidation.lab.json";
import loadBalancing from "./load-balancing.lab.json";
import segmentation from "./segmentation.lab.json";
import dhcpDns from "./dhcp-dns.lab.json";
import resources from "./resources.lab.json";

export interface GalleryLab {
  /** the file's name without .lab.json; stable (links may name it) */
  id: string;
  title: string;
  /** one line for the list */
  summary: string;
  /** some of its VMs run the Debian system image */
  needsDebian: boolean;
  /** the lab file's contents (validate before use) */
  lab: unknown;
}

export const GALLERY: GalleryLab[] = [
  {
    id: "consolidation", title: consolidation.title, needsDebian: true, lab: consolidation,
    summary: "A web server (nginx) and a database server (PostgreSQL) on one host: fill a table, publish a report, load both and watch the meters.",
  },
  {
    id: "load-balancing", title: loadBalancing.title, needsDebian: true, lab: loadBalancing,
    summary: "HAProxy in front of two nginx servers: requests take turns; stop one server and the service goes on.",
  },
  {
    id: "segmentation", title: segmentation.title, needsDebian: true, lab: segmentation,
    summary: "Two networks and a router: an nftables firewall lets only HTTP in from the outside, while the inside may still go out.",
  },
  {
    id: "dhcp-dns", title: dhcpDns.title, needsDebian: false, lab: dhcpDns,
    summary: "Renew a DHCP lease, register a name through DHCP, resolve names by DNS: each exchange seen in the network's capture.",
  },
  {
    id: "resources", title: resources.title, needsDebian: false, lab: resources,
    summary: "CPU weights between two loaded VMs, a CPU cap that holds even when the host is idle, and the memory balloon.",
  },
];

/** The gallery lab of this id, or undefined. */
export const galleryLab = (id: string): GalleryLab | undefined => GALLERY.find((g) => g.id === id);
