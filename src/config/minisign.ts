/**
 * minisign keys and signatures (https://jedisct1.github.io/minisign/), the
 * format Tauri's updater uses, with node:crypto only (Ed25519, BLAKE2b-512;
 * both also in Deno's node:crypto). Pure: text and bytes in, values out.
 *
 * Layouts (all base64 on the line after an `untrusted comment:` line):
 * - public key: `Ed` ‖ key id (8) ‖ Ed25519 public key (32)
 * - secret key: `Ed` ‖ kdf (2) ‖ `B2` ‖ salt (32) ‖ opslimit (8) ‖ memlimit (8) ‖ key id (8) ‖ seed+public (64) ‖ checksum (32)
 * - signature: `ED` (prehashed: Ed25519 over BLAKE2b-512 of the file) or
 *   `Ed` (legacy: over the file itself) ‖ key id (8) ‖ signature (64), then
 *   `trusted comment: …` and the global signature, Ed25519 over signature ‖ trusted comment.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { SignatureError } from '../base/errors.ts';

export type SignatureAlgorithm = 'ED' | 'Ed';

export interface MinisignPublicKey {
  /** 8 bytes as stored in files; minisign prints them reversed, see `keyIdHex`. */
  keyId: Buffer;
  /** The raw 32-byte Ed25519 public key. */
  publicKey: Buffer;
}

export interface MinisignSecretKey extends MinisignPublicKey {
  /** The 32-byte Ed25519 seed (libsodium's secret key is seed ‖ public key). */
  seed: Buffer;
}

export interface MinisignSignature {
  algorithm: SignatureAlgorithm;
  keyId: Buffer;
  signature: Buffer;
  untrustedComment: string;
  /** The text after `trusted comment: `; authenticated by `globalSignature`. */
  trustedComment: string;
  globalSignature: Buffer;
}

export interface SignOptions {
  trustedComment: string;
  /** @default "signature from lander secret key" */
  untrustedComment?: string;
  /** Sign the file itself (`Ed`) rather than its BLAKE2b-512 (`ED`), for verifiers older than minisign 0.8. @default false */
  legacy?: boolean;
}

export interface VerifyResult {
  algorithm: SignatureAlgorithm;
  trustedComment: string;
  keyId: string;
}

// DER wrappers that turn raw Ed25519 bytes into keys node:crypto accepts; constant
// because the algorithm identifier and the 32-byte length are (RFC 8410).
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const UNTRUSTED = 'untrusted comment: ';
const TRUSTED = 'trusted comment: ';
// minisign refuses longer comments; so does lander, so a signature it writes is always readable there.
const COMMENT_MAX = 1024;
const SECRET_KEY_BYTES = 158;

function fail(reason: string, message: string, data: Record<string, unknown> = {}): never {
  throw new SignatureError(message, { data: { reason, ...data } });
}

/** The key id as minisign prints it: the stored bytes reversed, upper-case hex. */
export function keyIdHex(keyId: Buffer): string {
  return Buffer.from(keyId).reverse().toString('hex').toUpperCase();
}

/** Strict base64: Buffer.from() skips junk silently, which would let a corrupted line decode to something. */
function decodeBase64(line: string, what: string, bytes: number): Buffer {
  const s = line.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) fail('malformed', `Cannot read the ${what}: it is not base64`);
  const b = Buffer.from(s, 'base64');
  if (b.toString('base64') !== s) fail('malformed', `Cannot read the ${what}: it is not canonical base64`);
  if (b.length !== bytes) fail('malformed', `Cannot read the ${what}: expected ${bytes} bytes, got ${b.length}`);
  return b;
}

function lines(text: string): string[] {
  return text.replace(/^\uFEFF/, '').split(/\r?\n/);
}

/** Checks a comment can go on one line of a minisign file. */
function checkComment(s: string, what: string): void {
  if (/[\r\n]/.test(s)) fail('malformed', `Cannot use the ${what}: it must be one line`);
  if (Buffer.byteLength(s) > COMMENT_MAX) fail('malformed', `Cannot use the ${what}: it is over ${COMMENT_MAX} bytes`);
}

/**
 * Reads a public key: a `.pub` file's text (comment line + key line) or the bare base64 key line.
 *
 * @example parsePublicKey('RWQxQckeYdYMWDMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+q').keyId
 */
export function parsePublicKey(text: string): MinisignPublicKey {
  const ls = lines(text).map((l) => l.trim()).filter((l) => l !== '');
  const keyLine = ls[0]?.startsWith(UNTRUSTED) ? ls[1] : ls[0];
  if (keyLine === undefined) fail('malformed', 'Cannot read the public key: it is empty');
  const b = decodeBase64(keyLine, 'public key', 42);
  if (b.subarray(0, 2).toString('latin1') !== 'Ed') fail('malformed', 'Cannot read the public key: it is not an Ed25519 minisign key');
  return { keyId: b.subarray(2, 10), publicKey: b.subarray(10, 42) };
}

/** The base64 key line alone, as `minisign -P` and the config's `publicKey` take it. */
export function publicKeyLine(k: MinisignPublicKey): string {
  return Buffer.concat([Buffer.from('Ed'), k.keyId, k.publicKey]).toString('base64');
}

export function formatPublicKey(k: MinisignPublicKey): string {
  return `${UNTRUSTED}minisign public key ${keyIdHex(k.keyId)}\n${publicKeyLine(k)}\n`;
}

/**
 * Reads a secret key in minisign's format. Only unencrypted keys (`minisign
 * -G -W`, `lander keygen`): an encrypted one needs its password and 1 GiB of
 * scrypt, which a daemon has no business holding.
 */
export function parseSecretKey(text: string): MinisignSecretKey {
  const ls = lines(text).map((l) => l.trim()).filter((l) => l !== '');
  const keyLine = ls[0]?.startsWith(UNTRUSTED) ? ls[1] : ls[0];
  if (keyLine === undefined) fail('malformed', 'Cannot read the secret key: it is empty');
  const b = decodeBase64(keyLine, 'secret key', SECRET_KEY_BYTES);
  if (b.subarray(0, 2).toString('latin1') !== 'Ed') fail('malformed', 'Cannot read the secret key: it is not an Ed25519 minisign key');
  const kdf = b.subarray(2, 4);
  if (kdf.toString('latin1') === 'Sc') {
    fail('encrypted', 'Cannot read the secret key: it is encrypted with a password; remove the password with `minisign -C -W -s FILE` or make a key with `lander keygen`');
  }
  if (kdf.readUInt16BE(0) !== 0) fail('malformed', `Cannot read the secret key: unknown key derivation ${JSON.stringify(kdf.toString('latin1'))}`);
  const keyId = b.subarray(54, 62);
  const seed = b.subarray(62, 94);
  const publicKey = b.subarray(94, 126);
  // minisign leaves the checksum of an unencrypted key zero and never reads it; deriving the public key checks the pair instead.
  if (!derivePublicKey(seed).equals(publicKey)) fail('malformed', 'Cannot read the secret key: its public half does not match its seed');
  return { keyId, seed, publicKey };
}

/** Writes the key exactly as `minisign -G -W` does (zero KDF fields and checksum), so `minisign -S` reads it. */
export function formatSecretKey(k: MinisignSecretKey): string {
  const b = Buffer.alloc(SECRET_KEY_BYTES);
  b.write('Ed', 0, 'latin1');
  b.write('B2', 4, 'latin1');
  k.keyId.copy(b, 54);
  k.seed.copy(b, 62);
  k.publicKey.copy(b, 94);
  return `${UNTRUSTED}minisign secret key ${keyIdHex(k.keyId)} (unencrypted; keep it secret)\n${b.toString('base64')}\n`;
}

export function generateKeyPair(): MinisignSecretKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_ED25519.length);
  return { keyId: randomBytes(8), seed: Buffer.from(seed), publicKey: derivePublicKey(seed) };
}

function privateKeyObject(seed: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, seed]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
}

function derivePublicKey(seed: Buffer): Buffer {
  return Buffer.from(createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' }).subarray(SPKI_ED25519.length));
}

export function blake2b512(data: Uint8Array): Buffer {
  return createHash('blake2b512').update(data).digest();
}

/** Reads a `.minisig` file: four lines, the last one optional only in the sense of a missing final newline. */
export function parseSignature(text: string): MinisignSignature {
  const ls = lines(text);
  while (ls.length > 0 && ls.at(-1) === '') ls.pop();
  if (ls.length !== 4) fail('malformed', `Cannot read the signature: expected 4 lines, got ${ls.length}`);
  const [l1, l2, l3, l4] = ls as [string, string, string, string];
  if (!l1.startsWith(UNTRUSTED)) fail('malformed', 'Cannot read the signature: the first line is not an untrusted comment');
  if (!l3.startsWith(TRUSTED)) fail('malformed', 'Cannot read the signature: the third line is not a trusted comment');
  const b = decodeBase64(l2, 'signature', 74);
  const algorithm = b.subarray(0, 2).toString('latin1');
  if (algorithm !== 'ED' && algorithm !== 'Ed') fail('malformed', `Cannot read the signature: unknown algorithm ${JSON.stringify(algorithm)}`);
  const trustedComment = l3.slice(TRUSTED.length);
  if (Buffer.byteLength(trustedComment) > COMMENT_MAX) fail('malformed', `Cannot read the signature: the trusted comment is over ${COMMENT_MAX} bytes`);
  return {
    algorithm,
    keyId: b.subarray(2, 10),
    signature: b.subarray(10, 74),
    untrustedComment: l1.slice(UNTRUSTED.length),
    trustedComment,
    globalSignature: decodeBase64(l4, 'trusted comment signature', 64),
  };
}

export function formatSignature(s: MinisignSignature): string {
  const sig = Buffer.concat([Buffer.from(s.algorithm, 'latin1'), s.keyId, s.signature]).toString('base64');
  return `${UNTRUSTED}${s.untrustedComment}\n${sig}\n${TRUSTED}${s.trustedComment}\n${s.globalSignature.toString('base64')}\n`;
}

/**
 * Signs `message` as `minisign -S` does.
 *
 * @example formatSignature(signMessage(bytes, key, { trustedComment: 'timestamp:1767225600\tfile:stable.json\tsequence:7' }))
 */
export function signMessage(message: Uint8Array, key: MinisignSecretKey, opts: SignOptions): MinisignSignature {
  const untrustedComment = opts.untrustedComment ?? 'signature from lander secret key';
  checkComment(untrustedComment, 'untrusted comment');
  checkComment(opts.trustedComment, 'trusted comment');
  const priv = privateKeyObject(key.seed);
  const algorithm: SignatureAlgorithm = opts.legacy ? 'Ed' : 'ED';
  const signature = sign(null, algorithm === 'ED' ? blake2b512(message) : message, priv);
  const globalSignature = sign(null, Buffer.concat([signature, Buffer.from(opts.trustedComment)]), priv);
  return { algorithm, keyId: Buffer.from(key.keyId), signature, untrustedComment, trustedComment: opts.trustedComment, globalSignature };
}

/**
 * Verifies a signature of `message` as `minisign -V` does: the key id, the
 * signature (prehashed or legacy), and the trusted comment's signature.
 *
 * @throws SignatureError (`ERR_SIGNATURE`) whose `data.reason` is `malformed`, `key-id`, `signature` or `trusted-comment`.
 */
export function verifySignature(message: Uint8Array, sig: MinisignSignature | string, key: MinisignPublicKey): VerifyResult {
  const s = typeof sig === 'string' ? parseSignature(sig) : sig;
  if (!s.keyId.equals(key.keyId)) {
    fail('key-id', `Cannot verify the signature: it was made with key ID ${keyIdHex(s.keyId)}, but the public key is ${keyIdHex(key.keyId)}`, { signatureKeyId: keyIdHex(s.keyId), keyId: keyIdHex(key.keyId) });
  }
  const pub = publicKeyObject(key.publicKey);
  if (!verify(null, s.algorithm === 'ED' ? blake2b512(message) : message, pub, s.signature)) {
    fail('signature', `Cannot verify the signature: it does not match the file (${s.algorithm === 'ED' ? 'prehashed' : 'legacy'} Ed25519, key ID ${keyIdHex(key.keyId)}); the file was altered or the signature belongs to another file`);
  }
  if (!verify(null, Buffer.concat([s.signature, Buffer.from(s.trustedComment)]), pub, s.globalSignature)) {
    fail('trusted-comment', 'Cannot verify the signature: the trusted comment does not match its signature; it was altered');
  }
  return { algorithm: s.algorithm, trustedComment: s.trustedComment, keyId: keyIdHex(key.keyId) };
}

/**
 * The `name:value` fields of a trusted comment, separated by tabs or spaces
 * (minisign writes `timestamp:1767225600\tfile:stable.json\thashed`); words
 * without a colon are skipped. A repeated field is ambiguous, so it throws.
 */
export function parseTrustedComment(comment: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of comment.split(/[\t ]+/)) {
    const i = word.indexOf(':');
    if (i <= 0) continue;
    const name = word.slice(0, i);
    if (Object.hasOwn(out, name)) fail('trusted-comment', `Cannot use the trusted comment: the field "${name}" appears twice`);
    out[name] = word.slice(i + 1);
  }
  return out;
}

/** The trusted comment `lander sign` writes: minisign's default fields plus the manifest's sequence, when it has one. */
export function landerTrustedComment(o: { timestamp: number; file: string; sequence?: number }): string {
  const file = o.file.replace(/[\s]/g, '_');
  return `timestamp:${Math.floor(o.timestamp / 1000)}\tfile:${file}${o.sequence === undefined ? '' : `\tsequence:${o.sequence}`}`;
}
