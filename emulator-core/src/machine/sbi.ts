// The SBI firmware, implemented in the emulator: the kernel's ECALLs from S-mode stop the hart and land here.
// Extensions: BASE, TIME, IPI, RFENCE, HSM, SRST and the legacy console/timer/shutdown calls.

export const SBI_SUCCESS = 0n;
export const SBI_ERR_NOT_SUPPORTED = -2n;
export const SBI_ERR_INVALID_PARAM = -3n;

const EXT_BASE = 0x10n;
const EXT_TIME = 0x54494d45n;
const EXT_IPI = 0x735049n;
const EXT_RFENCE = 0x52464e43n;
const EXT_HSM = 0x48534dn;
const EXT_SRST = 0x53525354n;
const LEGACY_SET_TIMER = 0x00n;
const LEGACY_PUTCHAR = 0x01n;
const LEGACY_GETCHAR = 0x02n;
const LEGACY_CLEAR_IPI = 0x03n;
const LEGACY_SEND_IPI = 0x04n;
const LEGACY_REMOTE_FENCE_I = 0x05n;
const LEGACY_REMOTE_SFENCE_VMA = 0x06n;
const LEGACY_REMOTE_SFENCE_VMA_ASID = 0x07n;
const LEGACY_SHUTDOWN = 0x08n;

/** What the firmware needs from the machine. */
export interface SbiHost {
  setTimer(deadline: bigint): void;
  putchar(byte: number): void;
  /** a byte of console input, or -1 */
  getchar(): number;
  fenceI(): void;
  sfenceVma(): void;
  sendSoftwareInterrupt(): void;
  clearSoftwareInterrupt(): void;
  /** SRST or legacy shutdown: type 0 shutdown, 1 cold reboot, 2 warm reboot; reason 0 none, 1 failure */
  reset(type: number, reason: number): void;
}

export interface SbiCall { eid: bigint; fid: bigint; args: bigint[] }
export interface SbiResult { error: bigint; value: bigint; legacy: boolean }

const IMPL_ID = 0x5456n; // "TV": not one of the registered ids, which are for real firmwares
const SPEC_VERSION = (1n << 24n) | 0n; // SBI v1.0

const toSigned = (v: bigint) => BigInt.asIntN(64, v);

export function sbiCall(host: SbiHost, { eid, fid, args }: SbiCall): SbiResult {
  const ok = (value = 0n): SbiResult => ({ error: SBI_SUCCESS, value, legacy: false });
  const err = (e: bigint): SbiResult => ({ error: e, value: 0n, legacy: false });
  const legacy = (value: bigint): SbiResult => ({ error: value, value: 0n, legacy: true });
  switch (eid) {
    case LEGACY_SET_TIMER: host.setTimer(args[0]); return legacy(0n);
    case LEGACY_PUTCHAR: host.putchar(Number(args[0] & 0xffn)); return legacy(0n);
    case LEGACY_GETCHAR: return legacy(BigInt(host.getchar()));
    case LEGACY_CLEAR_IPI: host.clearSoftwareInterrupt(); return legacy(0n);
    case LEGACY_SEND_IPI: host.sendSoftwareInterrupt(); return legacy(0n);
    case LEGACY_REMOTE_FENCE_I: host.fenceI(); return legacy(0n);
    case LEGACY_REMOTE_SFENCE_VMA:
    case LEGACY_REMOTE_SFENCE_VMA_ASID: host.sfenceVma(); return legacy(0n);
    case LEGACY_SHUTDOWN: host.reset(0, 0); return legacy(0n);
    case EXT_BASE:
      switch (fid) {
        case 0n: return ok(SPEC_VERSION);
        case 1n: return ok(IMPL_ID);
        case 2n: return ok(1n);
        case 3n: return ok(isSupported(args[0]) ? 1n : 0n);
        case 4n: case 5n: case 6n: return ok(0n); // mvendorid, marchid, mimpid
      }
      return err(SBI_ERR_NOT_SUPPORTED);
    case EXT_TIME:
      if (fid === 0n) { host.setTimer(args[0]); return ok(); }
      return err(SBI_ERR_NOT_SUPPORTED);
    case EXT_IPI:
      if (fid === 0n) { if (hartSelected(args[0], args[1])) host.sendSoftwareInterrupt(); return ok(); }
      return err(SBI_ERR_NOT_SUPPORTED);
    case EXT_RFENCE:
      if (fid === 0n) { if (hartSelected(args[0], args[1])) host.fenceI(); return ok(); }
      if (fid >= 1n && fid <= 6n) { if (hartSelected(args[0], args[1])) host.sfenceVma(); return ok(); }
      return err(SBI_ERR_NOT_SUPPORTED);
    case EXT_HSM:
      if (fid === 2n) return args[0] === 0n ? ok(0n) : err(SBI_ERR_INVALID_PARAM); // hart 0: started
      if (fid === 0n) return err(args[0] === 0n ? -7n /* ALREADY_AVAILABLE */ : SBI_ERR_INVALID_PARAM);
      return err(SBI_ERR_NOT_SUPPORTED);
    case EXT_SRST:
      if (fid === 0n) {
        const type = toSigned(args[0]), reason = toSigned(args[1]);
        if (type < 0n || type > 2n || reason < 0n || reason > 1n) return err(SBI_ERR_INVALID_PARAM);
        host.reset(Number(type), Number(reason));
        return ok();
      }
      return err(SBI_ERR_NOT_SUPPORTED);
  }
  return err(SBI_ERR_NOT_SUPPORTED);
}

function isSupported(eid: bigint): boolean {
  return [EXT_BASE, EXT_TIME, EXT_IPI, EXT_RFENCE, EXT_HSM, EXT_SRST].includes(eid) || (eid >= 0n && eid <= 8n);
}

/** Whether hart 0 is in the set given by (hart_mask, hart_mask_base); base -1 means all harts. */
function hartSelected(mask: bigint, base: bigint): boolean {
  if (toSigned(base) === -1n) return true;
  if (base > 0n) return false;
  return (mask & 1n) !== 0n;
}
