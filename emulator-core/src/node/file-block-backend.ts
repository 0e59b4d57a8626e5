// A disk image file as a virtio-blk backend (Node only). Synchronous I/O: the device runs on the VM's thread and
// completes each request before the guest continues.

import { openSync, fstatSync, readSync, writeSync, fsyncSync, closeSync } from "node:fs";
import type { BlockBackend } from "../machine/virtio/backends.ts";

export class FileBlockBackend implements BlockBackend {
  readonly path: string;
  readonly size: number;
  readonly readOnly: boolean;
  private fd: number;

  /** Opens `path` read-write (or read-only with { readOnly: true }). Throws a descriptive Error when the file is
   *  missing, unreadable/unwritable, not a regular file, empty, or not a whole number of 512-byte sectors. */
  constructor(path: string, opts: { readOnly?: boolean } = {}) {
    this.path = path;
    this.readOnly = opts.readOnly ?? false;
    try {
      this.fd = openSync(path, this.readOnly ? "r" : "r+");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why =
        code === "ENOENT" ? "does not exist" :
        // (said to the vm command's user, who has no read-only option: the VM writes to its disk)
        code === "EACCES" || code === "EPERM" ? (this.readOnly ? "is not readable (permission denied)"
          : "cannot be opened for reading and writing (permission denied): the VM writes to its disk, so give it a file you may read and write (a copy, or chmod u+rw)") :
        code === "EROFS" ? (this.readOnly ? `cannot be opened (${(e as Error).message})`
          : "is on a read-only file system: the VM writes to its disk, so give it a writable copy") :
        code === "EISDIR" ? "is a directory" :
        `cannot be opened (${(e as Error).message})`;
      throw new Error(`disk image ${path} ${why}`);
    }
    const st = fstatSync(this.fd);
    let bad: string | null = null;
    if (!st.isFile()) bad = "is not a regular file";
    else if (st.size === 0) bad = "is empty";
    else if (st.size % 512 !== 0) bad = `has size ${st.size}, which is not a multiple of 512 bytes`;
    if (bad) {
      closeSync(this.fd);
      throw new Error(`disk image ${path} ${bad}`);
    }
    this.size = st.size;
  }

  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const n = readSync(this.fd, dst, done, dst.length - done, offset + done);
      if (n === 0) { dst.fill(0, done); return; } // file shrank under us
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    if (this.readOnly) throw new Error(`disk image ${this.path} is read-only`);
    let done = 0;
    while (done < src.length) done += writeSync(this.fd, src, done, src.length - done, offset + done);
  }

  flush(): void {
    if (!this.readOnly) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd >= 0) { closeSync(this.fd); this.fd = -1; }
  }
}
