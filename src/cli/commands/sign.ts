/**
 * `lander sign FILE --key KEYFILE [--trusted-comment TEXT] [--legacy]`:
 * writes `FILE.minisig` as `minisign -S` would, with lander's trusted
 * comment (`timestamp:… file:… sequence:N`, the sequence read from the
 * manifest) unless one is given.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../base/atomic-file.ts';
import { LanderError } from '../../base/errors.ts';
import { formatSignature, keyIdHex, landerTrustedComment, parseSecretKey, signMessage } from '../../config/minisign.ts';

export interface SignCommandOptions {
  file: string;
  key: string;
  trustedComment?: string;
  legacy?: boolean;
  stdout: NodeJS.WritableStream;
  /** @default Date.now */
  now?: () => number;
}

/** A lander manifest's own `sequence`, so the trusted comment carries it; undefined for any other file. */
function manifestSequence(bytes: Buffer): number | undefined {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as { sequence?: unknown };
    return typeof v?.sequence === 'number' && Number.isSafeInteger(v.sequence) && v.sequence >= 0 ? v.sequence : undefined;
  } catch {
    return undefined; // not JSON: signing any file is fine, it just has no sequence
  }
}

export async function signCommand(opts: SignCommandOptions): Promise<number> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (cause) {
      throw new LanderError('ERR_SIGN', `Cannot sign ${opts.file}: cannot read the ${what} ${file}: ${(cause as Error).message}`, { cause, data: { file } });
    }
  };
  const key = parseSecretKey((await read(opts.key, 'secret key')).toString('utf8'));
  const bytes = await read(opts.file, 'file');
  const sequence = manifestSequence(bytes);
  const trustedComment = opts.trustedComment ?? landerTrustedComment({ timestamp: (opts.now ?? Date.now)(), file: path.basename(opts.file), ...(sequence !== undefined ? { sequence } : {}) });
  const sig = signMessage(bytes, key, { trustedComment, legacy: opts.legacy ?? false });
  const out = `${opts.file}.minisig`;
  await writeFileAtomic(out, formatSignature(sig));
  opts.stdout.write(`${out}\n  key ID ${keyIdHex(key.keyId)}, ${sig.algorithm === 'ED' ? 'prehashed' : 'legacy'}\n  trusted comment: ${trustedComment}\n`);
  return 0;
}
