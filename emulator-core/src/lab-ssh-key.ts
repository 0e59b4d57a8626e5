// The lab's SSH key: one ed25519 key pair per lab, which every Debian VM of the lab gets on its kernel command line
// (tabvisor.sshkey=..., read by guest/debian/overlay/usr/local/sbin/tabvisor-init), so root on any VM of the lab
// reaches root on any other with `ssh NAME`. The parameter's value is the base64 body of an unencrypted OpenSSH
// private key file ("openssh-key-v1", the lines between BEGIN and END joined): about 320 characters, well inside
// the kernel's 1024-byte command line. (The command line is readable by everyone in the guest: a lab key, not a
// secret from the lab's own users.) WebCrypto makes the key, so the page (Chromium 137+) and Node both can.

export interface LabSshKey {
  /** the value of tabvisor.sshkey= */
  param: string;
  /** the private key file as ssh-keygen writes it */
  privateKeyFile: string;
  /** the public key line (authorized_keys format) */
  publicKey: string;
}

const enc = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

/** An SSH wire-format string: its length (u32, big-endian), then its bytes. */
function sshString(b: Uint8Array | string): Uint8Array {
  const body = typeof b === "string" ? enc.encode(b) : b;
  return concat(u32(body.length), body);
}

const base64 = (b: Uint8Array): string => btoa(String.fromCharCode(...b));
const fromBase64url = (s: string): Uint8Array => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

/** A new lab key (the OpenSSH private key format of PROTOCOL.key: no cipher, no KDF, one key). */
export async function makeLabSshKey(comment = "tabvisor-lab"): Promise<LabSshKey> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  const pub = fromBase64url(jwk.x!), seed = fromBase64url(jwk.d!);
  const pubBlob = concat(sshString("ssh-ed25519"), sshString(pub));
  const check = crypto.getRandomValues(new Uint32Array(1))[0];
  let priv = concat(u32(check), u32(check), sshString("ssh-ed25519"), sshString(pub), sshString(concat(seed, pub)), sshString(comment));
  // padding 1, 2, 3, ... to the cipher's block size (8 for "none")
  priv = concat(priv, Uint8Array.from({ length: (8 - (priv.length % 8)) % 8 }, (_, i) => i + 1));
  const blob = concat(enc.encode("openssh-key-v1\0"), sshString("none"), sshString("none"), sshString(""),
    u32(1), sshString(pubBlob), sshString(priv));
  const param = base64(blob);
  const lines = param.match(/.{1,70}/g)!.join("\n");
  return {
    param,
    privateKeyFile: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${base64(pubBlob)} ${comment}`,
  };
}
