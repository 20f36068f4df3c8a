/**
 * What a signed manifest must prove before lander uses it (pure, but for
 * reading a key file): a minisign signature by the configured key over the
 * exact bytes served, a trusted comment that agrees with the manifest, and
 * a sequence, so that src/manifest-poller.ts can refuse an older release.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, ManifestError, SignatureError } from '../base/errors.ts';
import type { ParsedManifest } from './manifest.ts';
import { parsePublicKey, parseTrustedComment, verifySignature, type MinisignPublicKey, type SignatureAlgorithm } from './minisign.ts';

/** What the signature vouched for, kept with the accepted manifest. */
export interface ManifestSignatureInfo {
  /** Key id as minisign prints it. */
  keyId: string;
  algorithm: SignatureAlgorithm;
  trustedComment: string;
}

/** A public key file is small; a bigger one is not a key. */
const MAX_KEY_FILE = 4096;

/**
 * The signature's URL: the manifest's path plus `.minisig`, on the same
 * origin, keeping a query string (a signed URL's token) where it was.
 *
 * @example signatureUrl('https://host/rel/stable.json?t=1') // 'https://host/rel/stable.json.minisig?t=1'
 */
export function signatureUrl(manifestUrl: string): string {
  const u = new URL(manifestUrl);
  u.pathname += '.minisig';
  return u.href;
}

/** The config's `manifest.publicKey`: a key line, or an absolute path to a `.pub` file (read now). */
export async function loadPublicKey(setting: string): Promise<MinisignPublicKey> {
  if (!path.isAbsolute(setting)) return parsePublicKey(setting);
  let text: string;
  try {
    const buf = await readFile(setting);
    if (buf.length > MAX_KEY_FILE) throw new Error(`it is ${buf.length} bytes; a public key file is about 100`);
    text = buf.toString('utf8');
  } catch (cause) {
    throw new ConfigError(`Cannot read manifest.publicKey ${setting}: ${(cause as Error).message}`, { cause, data: { file: setting, issues: [{ path: 'manifest.publicKey', message: (cause as Error).message }] } });
  }
  try {
    return parsePublicKey(text);
  } catch (cause) {
    throw new ConfigError(`Cannot use manifest.publicKey ${setting}: ${(cause as Error).message}`, { cause, data: { file: setting, issues: [{ path: 'manifest.publicKey', message: (cause as Error).message }] } });
  }
}

/**
 * Verifies the manifest's bytes against its `.minisig` text.
 *
 * @throws SignatureError (`ERR_SIGNATURE`) naming the manifest, with `data.reason` from src/minisign.ts.
 */
export function verifyManifestSignature(url: string, bytes: Uint8Array, signatureText: string, key: MinisignPublicKey): ManifestSignatureInfo {
  try {
    const r = verifySignature(bytes, signatureText, key);
    return { keyId: r.keyId, algorithm: r.algorithm, trustedComment: r.trustedComment };
  } catch (cause) {
    if (!(cause instanceof SignatureError)) throw cause;
    throw new SignatureError(`Cannot use the manifest ${url}: ${cause.message.replace(/^Cannot [^:]*: /, 'bad signature: ')}`, { cause, data: { ...cause.data, url, signatureUrl: signatureUrl(url) } });
  }
}

/**
 * The sequence of a verified manifest, after checking the trusted comment
 * against it:
 * - `sequence:N` in the comment must equal the manifest's own `sequence`
 *   when both are present; either alone is enough (both are signed: the
 *   body by the signature, the comment by the global signature).
 * - Neither present: refused. Without a sequence an old signed release
 *   could be replayed forever.
 * - `file:NAME` in the comment (minisign writes it) must be the last
 *   segment of the manifest's URL, so a signed manifest of another
 *   channel by the same key cannot be served in this one's place.
 */
export function signedSequence(url: string, manifest: ParsedManifest, sig: ManifestSignatureInfo): number {
  const fields = parseTrustedComment(sig.trustedComment);
  const refuse = (message: string) => {
    throw new SignatureError(`Cannot use the manifest ${url}: ${message}`, { data: { url, reason: 'trusted-comment', trustedComment: sig.trustedComment } });
  };
  const expectedFile = decodeURIComponent(path.posix.basename(new URL(url).pathname));
  if (fields.file !== undefined && fields.file !== expectedFile) {
    refuse(`the trusted comment names the file ${JSON.stringify(fields.file)}, but the manifest is ${JSON.stringify(expectedFile)}; a manifest signed for another name is not accepted`);
  }
  let commentSequence: number | undefined;
  if (fields.sequence !== undefined) {
    if (!/^\d{1,15}$/.test(fields.sequence)) refuse(`the trusted comment's sequence ${JSON.stringify(fields.sequence)} is not a whole number`);
    commentSequence = Number(fields.sequence);
  }
  if (commentSequence !== undefined && manifest.sequence !== undefined && commentSequence !== manifest.sequence) {
    refuse(`the trusted comment says sequence ${commentSequence}, the manifest says ${manifest.sequence}`);
  }
  const sequence = manifest.sequence ?? commentSequence;
  if (sequence === undefined) {
    throw new ManifestError(`Cannot use the manifest ${url}: a signed manifest needs a sequence (the manifest's "sequence" field, or "sequence:N" in the trusted comment) so that an older release can be refused`, {
      data: { url, issues: [{ path: 'sequence', message: 'Required for a signed manifest' }] },
    });
  }
  return sequence;
}
