// FileBlockBackend's messages when a disk image cannot be opened for writing: they speak to the vm command's user,
// who has no read-only option (issue 12: the message named a `readOnly` option the CLI does not have). The tests
// run as root in CI, where a permission error cannot be made with chmod: node:fs's openSync fails on purpose here
// for the file names below.

import { describe, it, expect, vi } from "vitest";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { scratchDirs } from "./scratch-dirs.ts";

const scratch = scratchDirs();

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const failing: Record<string, string> = { "denied.img": "EACCES", "roots.img": "EROFS" };
  const openSync = (path: import("node:fs").PathLike, ...rest: unknown[]) => {
    const code = failing[String(path).split("/").pop()!];
    if (code) throw Object.assign(new Error(`${code}: open '${String(path)}'`), { code });
    return (fs.openSync as (...a: unknown[]) => number)(path, ...rest);
  };
  return { ...fs, default: { ...fs, openSync }, openSync };
});

const { FileBlockBackend } = await import("../src/node/file-block-backend.ts");
const { NodeVm, VmConfigError } = await import("../src/node/vm.ts");

describe("a disk image the VM may not write", () => {
  const dir = scratch("tabvisor-fbb-");
  for (const name of ["denied.img", "roots.img"]) writeFileSync(join(dir, name), new Uint8Array(1024));

  it("is refused with a message that names no option the vm command lacks", () => {
    const denied = join(dir, "denied.img");
    expect(() => new FileBlockBackend(denied)).toThrow(
      `disk image ${denied} cannot be opened for reading and writing (permission denied): the VM writes to its disk, so give it a file you may read and write (a copy, or chmod u+rw)`);
    const roots = join(dir, "roots.img");
    expect(() => new FileBlockBackend(roots)).toThrow(
      `disk image ${roots} is on a read-only file system: the VM writes to its disk, so give it a writable copy`);
    for (const path of [denied, roots]) {
      try {
        new FileBlockBackend(path);
      } catch (e) {
        expect((e as Error).message).not.toMatch(/readOnly|read-only option/);
      }
    }
  });

  it("reaches the vm command as that one line (NodeVm's VmConfigError)", () => {
    const denied = join(dir, "denied.img");
    let error: unknown;
    try {
      new NodeVm({ disk: denied });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(VmConfigError);
    expect((error as Error).message).toMatch(/cannot be opened for reading and writing \(permission denied\): the VM writes to its disk/);
    expect((error as Error).message).not.toMatch(/readOnly/);
  });

  it("opened read-only through the API, a permission error just says so", () => {
    const denied = join(dir, "denied.img");
    expect(() => new FileBlockBackend(denied, { readOnly: true })).toThrow(`disk image ${denied} is not readable (permission denied)`);
  });
});
