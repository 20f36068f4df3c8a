/**
 * `lander keygen --out DIR`: a minisign key pair for signing manifests,
 * `lander.pub` (give it to every lander: `manifest.publicKey`) and
 * `lander.key` (mode 0600, unencrypted, readable by `minisign -S -s`).
 */
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { LanderError } from '../../base/errors.ts';
import { formatPublicKey, formatSecretKey, generateKeyPair, keyIdHex, publicKeyLine } from '../../config/minisign.ts';

export interface KeygenCommandOptions {
  out: string;
  stdout: NodeJS.WritableStream;
}

/** Creates `file` only if it does not exist (O_EXCL), so an existing key is never replaced, not even by a race. */
async function writeNew(file: string, text: string, mode: number): Promise<void> {
  const fh = await open(file, 'wx', mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function keygenCommand(opts: KeygenCommandOptions): Promise<number> {
  const dir = path.resolve(opts.out);
  const pubFile = path.join(dir, 'lander.pub');
  const keyFile = path.join(dir, 'lander.key');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = generateKeyPair();
  try {
    await writeNew(keyFile, formatSecretKey(key), 0o600);
  } catch (cause) {
    const exists = (cause as NodeJS.ErrnoException).code === 'EEXIST';
    throw new LanderError(exists ? 'ERR_EXISTS' : 'ERR_KEYGEN', `Cannot write ${keyFile}: ${exists ? 'it exists; lander keygen never replaces a key (move it away first)' : (cause as Error).message}`, { cause, data: { file: keyFile } });
  }
  try {
    await writeNew(pubFile, formatPublicKey(key), 0o644);
  } catch (cause) {
    // A lone secret key whose public half is lost is useless; and the existing .pub belongs to another key.
    await rm(keyFile, { force: true });
    const exists = (cause as NodeJS.ErrnoException).code === 'EEXIST';
    throw new LanderError(exists ? 'ERR_EXISTS' : 'ERR_KEYGEN', `Cannot write ${pubFile}: ${exists ? 'it exists; lander keygen never replaces a key (move it away first)' : (cause as Error).message}`, { cause, data: { file: pubFile } });
  }
  opts.stdout.write(
    `key ID ${keyIdHex(key.keyId)}\n` +
    `secret key: ${keyFile} (unencrypted, mode 0600: keep it off the machines that verify)\n` +
    `public key: ${pubFile}\n` +
    `config:     "manifest": { "publicKey": "${publicKeyLine(key)}" }\n` +
    `sign:       lander sign stable.json --key ${keyFile}   (or: minisign -S -s ${keyFile} -m stable.json)\n`,
  );
  return 0;
}
