// The lab's SSH key: one ed25519 key pair per lab, which every Debian VM of the lab gets on its kernel command line
// (tabvisor.sshkey=..., read by guest/debian/overlay/usr/local/sbin/tabvisor-init), so root on any VM of the lab
// reaches root on any other with `ssh NAME`. The parameter's value is the base64 body of an unencrypted OpenSSH
// private key file ("openssh-key-v1", the lines between BEGIN and END joined): about 320 characters, well inside
// the kernel's 1024-byte command line. (The command line is readable by everyone in the guest: a lab key, not a
// secret from the lab's own users.)

import { generateKeyPairSync, randomBytes } from "node:crypto";

export interface LabSshKey {
  /** the value of tabvisor.sshkey= */
  param: string;
  /** the private key file as ssh-keygen writes it */
  privateKeyFile: string;
  /** the public key line (authorized_keys format) */
  publicKey: string;
}

function sshString(b: Uint8Array | string): Buffer {
  const body = typeof b === "string" ? Buffer.from(b, "utf8") : Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/** A new lab key (the OpenSSH private key format of PROTOCOL.key: no cipher, no KDF, one key). */
export function makeLabSshKey(comment = "tabvisor-lab"): LabSshKey {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
  const seed = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  const pubBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  const check = randomBytes(4).readUInt32BE();
  let priv = Buffer.concat([u32(check), u32(check), sshString("ssh-ed25519"), sshString(pub),
    sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  // padding 1, 2, 3, ... to the cipher's block size (8 for "none")
  const pad = Buffer.from(Array.from({ length: (8 - (priv.length % 8)) % 8 }, (_, i) => i + 1));
  priv = Buffer.concat([priv, pad]);
  const blob = Buffer.concat([Buffer.from("openssh-key-v1\0", "latin1"), sshString("none"), sshString("none"), sshString(""),
    u32(1), sshString(pubBlob), sshString(priv)]);
  const param = blob.toString("base64");
  const lines = param.match(/.{1,70}/g)!.join("\n");
  return {
    param,
    privateKeyFile: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${pubBlob.toString("base64")} ${comment}`,
  };
}
