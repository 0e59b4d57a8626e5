#!/usr/bin/env node
// guest/qemu-smoke.mjs - boot the guest images on QEMU (riscv64 virt + OpenSBI)
// and check them from the console: prompt, uname, hostname, cpuinfo, DHCP on
// virtio-net (QEMU's user-mode network), mkfs.ext2 + mount on virtio-blk,
// loopback httpd/wget, job control (^C), poweroff.
//
//   node guest/qemu-smoke.mjs [IMAGES_DIR]      (default: public/images)
//
// Skipped (exit 0) when qemu-system-riscv64 or the images are absent; Debian:
// apt-get install qemu-system-misc opensbi. Not part of CI; a manual check of
// the image recipe. Prints 'N passed, N failed' at the end.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, closeSync, openSync, ftruncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const images = resolve(process.argv[2] ?? join(here, '..', 'public', 'images'));
const kernel = join(images, 'Image');
const initrd = join(images, 'initramfs.cpio.gz');
const qemu = 'qemu-system-riscv64';

if (spawnSync(qemu, ['--version']).error) {
  console.log(`qemu-smoke: skipped (${qemu} not found; apt-get install qemu-system-misc opensbi)`);
  process.exit(0);
}
if (!existsSync(kernel) || !existsSync(initrd)) {
  console.log(`qemu-smoke: skipped (no Image / initramfs.cpio.gz in ${images}; npm run images)`);
  process.exit(0);
}
const bios = ['/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin'].find(existsSync) ?? 'default';

const work = mkdtempSync(join(tmpdir(), 'tabvisor-smoke-'));
const disk = join(work, 'disk.img');
const fd = openSync(disk, 'w');
ftruncateSync(fd, 64 << 20);
closeSync(fd);

const args = ['-M', 'virt', '-m', '256', '-smp', '1', '-nographic', '-bios', bios,
  '-kernel', kernel, '-initrd', initrd, '-append', 'console=ttyS0 hostname=vm1',
  '-netdev', 'user,id=n0', '-device', 'virtio-net-device,netdev=n0',
  '-drive', `file=${disk},if=none,format=raw,id=d0`, '-device', 'virtio-blk-device,drive=d0'];

const t0 = performance.now();
const vm = spawn(qemu, args, { stdio: ['pipe', 'pipe', 'inherit'] });
let out = '';
let exited = null;
const waiters = new Set();
const verbose = !!process.env.VERBOSE;
vm.stdout.on('data', (b) => {
  const s = b.toString('latin1');
  out += s;
  if (verbose) process.stdout.write(s);
  for (const w of waiters) w();
});
vm.on('exit', (code) => { exited = { code, at: performance.now() }; for (const w of waiters) w(); });

// Wait until re matches the output after `from`; returns [match, index after it].
function waitFor(re, from, ms) {
  return new Promise((res, rej) => {
    const check = () => {
      const m = re.exec(out.slice(from));
      if (m) { done(); res([m, from + m.index + m[0].length]); }
      else if (exited) { done(); rej(new Error(`qemu exited while waiting for ${re}`)); }
    };
    const timer = setTimeout(() => { done(); rej(new Error(`timeout waiting for ${re}`)); }, ms);
    const done = () => { clearTimeout(timer); waiters.delete(check); };
    waiters.add(check);
    check();
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let n = 0;
let pos = 0;
// Run a shell command; resolve to its output (without the echoed command line).
async function sh(cmd, ms = 20000) {
  n += 1;
  const start = out.length;
  // The echoed line shows @@END""n@@, the real output @@ENDn@@.
  vm.stdin.write(`${cmd}; echo "@@END""${n}@@ $?"\n`);
  const [m, after] = await waitFor(new RegExp(`@@END${n}@@ (\\d+)\\r?\\n`), start, ms);
  pos = after;
  const text = out.slice(start, after - m[0].length);
  // Skip the echoed command (it may wrap over several lines, or show twice:
  // the tty echo of early input, then the shell line editor).
  const echoEnd = text.lastIndexOf(`@@END""${n}@@ $?"`);
  const nl = echoEnd >= 0 ? text.indexOf('\n', echoEnd) : -1;
  return { status: Number(m[1]), text: nl >= 0 ? text.slice(nl + 1) : '' };
}

const results = [];
function check(name, ok, detail = '') {
  results.push(ok);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
}

try {
  const [ready, afterReady] = await waitFor(/@@GUEST_READY@@[^\n]*\n/, 0, 60000);
  const tReady = performance.now() - t0;
  check('ready marker', true, `${(tReady / 1000).toFixed(2)} s after QEMU start: ${ready[0].trim()}`);
  const [, afterPrompt] = await waitFor(/vm1:~# /, afterReady, 20000);
  pos = afterPrompt;
  check('prompt shows hostname', true, `${((performance.now() - t0) / 1000).toFixed(2)} s`);

  let r = await sh('uname -m');
  check('uname -m', r.text.trim() === 'riscv64', r.text.trim());
  r = await sh('hostname');
  check('hostname', r.text.trim() === 'vm1', r.text.trim());
  r = await sh('grep -m1 -E "^isa" /proc/cpuinfo');
  check('/proc/cpuinfo', r.status === 0 && /rv64/.test(r.text), r.text.trim());
  r = await sh('for i in $(seq 200); do ip -4 addr show dev eth0 | grep -q inet && break; sleep 0.1; done; ip addr show eth0');
  check('DHCP address on eth0', /inet 10\.0\.2\.15\/24/.test(r.text), (r.text.match(/inet \S+/) ?? ['none'])[0]);
  r = await sh('ip route; cat /etc/resolv.conf');
  check('default route + resolv.conf', /default via 10\.0\.2\.2/.test(r.text) && /nameserver 10\.0\.2\.3/.test(r.text),
    r.text.replace(/\s+/g, ' ').trim());
  r = await sh('mkfs.ext2 -q /dev/vda >/dev/null 2>&1 || mkfs.ext2 /dev/vda; mount /dev/vda /mnt && echo data-ok > /mnt/f && umount /mnt && mount -t ext4 /dev/vda /mnt && cat /mnt/f && df -h /mnt | tail -1');
  check('mkfs.ext2 + mount virtio-blk', r.status === 0 && /data-ok/.test(r.text), r.text.trim().split('\n').pop().replace(/\s+/g, ' '));
  r = await sh('httpd -p 127.0.0.1:8080 -h /etc && wget -q -O - http://127.0.0.1:8080/hostname');
  check('httpd + wget on loopback', r.text.trim() === 'vm1', r.text.trim());
  r = await sh('for a in sh httpd wget nc ping ip telnetd udhcpc mkfs.ext2 dd sha256sum gzip; do command -v $a >/dev/null || echo missing $a; done');
  check('applets present', r.status === 0 && !/missing/.test(r.text), r.text.trim() || 'all');
  // Job control: ^C must interrupt a foreground command.
  const before = out.length;
  vm.stdin.write('sleep 30\n');
  await sleep(1000);
  vm.stdin.write('\x03');
  try {
    await waitFor(/vm1:~# (\x1b\[6n)?$/, before + 10, 5000); // the line editor may add a cursor query
    check('^C interrupts a foreground command', true);
  } catch (e) { check('^C interrupts a foreground command', false, e.message); }

  const tOff = performance.now();
  vm.stdin.write('poweroff\n');
  for (let i = 0; i < 300 && !exited; i++) await sleep(100);
  check('poweroff ends QEMU', exited !== null, exited ? `in ${((exited.at - tOff) / 1000).toFixed(2)} s, exit code ${exited.code}` : 'still running');
} catch (e) {
  check('session', false, e.message);
  console.log('--- console output (last 3000 chars) ---\n' + out.slice(-3000));
} finally {
  if (!exited) vm.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
const passed = results.filter(Boolean).length;
console.log(`${passed} passed, ${results.length - passed} failed`);
process.exit(results.length - passed ? 1 : 0);
