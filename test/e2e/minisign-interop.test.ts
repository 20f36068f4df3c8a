/**
 * Interoperability with the real `minisign` (Debian package, installed by
 * .ci/run), both ways: signatures and keys minisign makes are read by lander,
 * and `lander keygen` / `lander sign` (the real CLI, a child process) make
 * files that `minisign -V` accepts. Tampering is refused by both.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignatureError } from '../../src/base/errors.ts';
import { parsePublicKey, parseSecretKey, verifySignature, formatSignature, signMessage, publicKeyLine } from '../../src/config/minisign.ts';
import { runLander } from '../helpers/lander-cli.ts';

interface Run { code: number; stdout: string; stderr: string }

function minisign(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    // stdin closed: a prompt for a password would fail instead of hanging.
    const child = execFile('minisign', args, { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

const haveMinisign = await minisign(['-v']).then((r) => r.code === 0 && /minisign/.test(r.stdout + r.stderr), () => false);
// On CI a missing minisign is a failure (.ci/run installs it); on a workstation the file is skipped.
const describeMinisign = haveMinisign || process.env.CI ? describe : describe.skip;
if (!haveMinisign && !process.env.CI) console.warn('minisign-interop: skipped: the minisign program is not installed (apt-get install minisign)');

let dir: string;
let version = '';
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'lander-minisign-'));
  version = (await minisign(['-v'])).stdout.trim();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SignatureError);
    return (err as SignatureError).data.reason as string;
  }
  throw new Error('expected a SignatureError');
}

describeMinisign('minisign signs, lander verifies', () => {
  let pubText: string;
  let file: string;
  beforeAll(async () => {
    const r = await minisign(['-G', '-W', '-p', path.join(dir, 'ms.pub'), '-s', path.join(dir, 'ms.key')]);
    expect(r.code, r.stderr).toBe(0);
    pubText = await readFile(path.join(dir, 'ms.pub'), 'utf8');
    file = path.join(dir, 'stable.json');
    await writeFile(file, JSON.stringify({ schema: 1, sequence: 3, components: {} }));
  });

  it(`verifies a prehashed signature (the default) with minisign's default trusted comment`, async () => {
    const r = await minisign(['-S', '-s', path.join(dir, 'ms.key'), '-m', file]);
    expect(r.code, r.stderr).toBe(0);
    const v = verifySignature(await readFile(file), await readFile(`${file}.minisig`, 'utf8'), parsePublicKey(pubText));
    expect(v.algorithm).toBe('ED');
    expect(v.trustedComment).toMatch(/^timestamp:\d+\tfile:stable\.json\thashed$/);
    expect(version).toMatch(/minisign \d/);
  });

  it('verifies a legacy signature (-l) and a custom trusted comment (-t)', async () => {
    const sig = path.join(dir, 'legacy.minisig');
    const r = await minisign(['-S', '-l', '-s', path.join(dir, 'ms.key'), '-m', file, '-x', sig, '-t', 'timestamp:1 file:stable.json sequence:3']);
    expect(r.code, r.stderr).toBe(0);
    const v = verifySignature(await readFile(file), await readFile(sig, 'utf8'), parsePublicKey(pubText));
    expect(v).toMatchObject({ algorithm: 'Ed', trustedComment: 'timestamp:1 file:stable.json sequence:3' });
  });

  it('refuses a tampered file, a wrong key and a tampered trusted comment', async () => {
    await minisign(['-S', '-s', path.join(dir, 'ms.key'), '-m', file]);
    const sigText = await readFile(`${file}.minisig`, 'utf8');
    const pub = parsePublicKey(pubText);
    const body = await readFile(file);
    expect(reason(() => verifySignature(Buffer.concat([body, Buffer.from(' ')]), sigText, pub))).toBe('signature');
    await minisign(['-G', '-W', '-p', path.join(dir, 'other.pub'), '-s', path.join(dir, 'other.key')]);
    expect(reason(() => verifySignature(body, sigText, parsePublicKey(readFileSync(path.join(dir, 'other.pub'), 'utf8'))))).toBe('key-id');
    const tampered = sigText.replace(/^trusted comment: (.*)$/m, 'trusted comment: $1\tsequence:99');
    expect(reason(() => verifySignature(body, tampered, pub))).toBe('trusted-comment');
  });

  it('reads a secret key made by minisign -G -W and signs so that minisign verifies', async () => {
    const sk = parseSecretKey(await readFile(path.join(dir, 'ms.key'), 'utf8'));
    const sig = path.join(dir, 'by-lander.minisig');
    await writeFile(sig, formatSignature(signMessage(await readFile(file), sk, { trustedComment: 'timestamp:2 file:stable.json sequence:3' })));
    const r = await minisign(['-V', '-p', path.join(dir, 'ms.pub'), '-m', file, '-x', sig]);
    expect(r.code, r.stderr).toBe(0);
  });
});

describeMinisign('lander keygen and sign, minisign verifies', () => {
  let keys: string;
  let file: string;
  beforeAll(async () => {
    keys = path.join(dir, 'keys');
    const r = await runLander(['keygen', '--out', keys]);
    expect(r.code, r.stderr).toBe(0);
    file = path.join(dir, 'manifest.json');
    await writeFile(file, JSON.stringify({ schema: 1, sequence: 12, components: {} }, null, 2));
  });

  it('writes lander.key 0600 and refuses to overwrite it', async () => {
    expect((await stat(path.join(keys, 'lander.key'))).mode & 0o777).toBe(0o600);
    const before = await readFile(path.join(keys, 'lander.key'), 'utf8');
    const again = await runLander(['keygen', '--out', keys]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/lander\.key: it exists/);
    expect(await readFile(path.join(keys, 'lander.key'), 'utf8')).toBe(before);
  });

  it('minisign -V accepts lander sign (prehashed), also with -q, -H and the key given inline with -P', async () => {
    const s = await runLander(['sign', file, '--key', path.join(keys, 'lander.key')]);
    expect(s.code, s.stderr).toBe(0);
    const v = await minisign(['-V', '-p', path.join(keys, 'lander.pub'), '-m', file]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/Signature and comment signature verified/);
    expect(v.stdout).toMatch(/Trusted comment: timestamp:\d+\tfile:manifest\.json\tsequence:12/);
    const q = await minisign(['-V', '-q', '-p', path.join(keys, 'lander.pub'), '-m', file]);
    expect(q).toMatchObject({ code: 0, stdout: '' });
    const h = await minisign(['-V', '-H', '-P', publicKeyLine(parsePublicKey(await readFile(path.join(keys, 'lander.pub'), 'utf8'))), '-m', file]);
    expect(h.code, h.stderr).toBe(0);
  });

  it('minisign -V accepts lander sign --legacy and a custom trusted comment; -H then refuses it as legacy', async () => {
    const s = await runLander(['sign', file, '--key', path.join(keys, 'lander.key'), '--legacy', '--trusted-comment', 'release 12 sequence:12']);
    expect(s.code, s.stderr).toBe(0);
    const v = await minisign(['-V', '-p', path.join(keys, 'lander.pub'), '-m', file]);
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout).toMatch(/Trusted comment: release 12 sequence:12/);
    expect((await minisign(['-V', '-H', '-p', path.join(keys, 'lander.pub'), '-m', file])).code).not.toBe(0);
  });

  it('minisign -S signs with lander.key; lander and minisign verify', async () => {
    const sig = path.join(dir, 'ms-with-lander-key.minisig');
    const s = await minisign(['-S', '-s', path.join(keys, 'lander.key'), '-m', file, '-x', sig]);
    expect(s.code, s.stderr).toBe(0);
    expect(verifySignature(await readFile(file), await readFile(sig, 'utf8'), parsePublicKey(await readFile(path.join(keys, 'lander.pub'), 'utf8'))).algorithm).toBe('ED');
  });

  it('minisign -V refuses a tampered file, a wrong key and a tampered trusted comment', async () => {
    await runLander(['sign', file, '--key', path.join(keys, 'lander.key')]);
    const pub = path.join(keys, 'lander.pub');
    const tamperedFile = path.join(dir, 'tampered.json');
    await writeFile(tamperedFile, (await readFile(file, 'utf8')).replace('12', '13'));
    expect((await minisign(['-V', '-p', pub, '-m', tamperedFile, '-x', `${file}.minisig`])).code).not.toBe(0);
    const other = path.join(dir, 'keys-other');
    await runLander(['keygen', '--out', other]);
    const wrong = await minisign(['-V', '-p', path.join(other, 'lander.pub'), '-m', file]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr + wrong.stdout).toMatch(/key id/i);
    const sigText = await readFile(`${file}.minisig`, 'utf8');
    const badComment = path.join(dir, 'bad-comment.minisig');
    await writeFile(badComment, sigText.replace('sequence:12', 'sequence:99'));
    const tc = await minisign(['-V', '-p', pub, '-m', file, '-x', badComment]);
    expect(tc.code).not.toBe(0);
    expect(tc.stderr + tc.stdout).toMatch(/comment signature verification failed/i);
  });

  it('lander sign without --key or a file is a usage error (exit 2)', async () => {
    expect((await runLander(['sign', file])).code).toBe(2);
    expect((await runLander(['keygen'])).code).toBe(2);
  });
});
