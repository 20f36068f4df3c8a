/** The TCP status API's bearer token, from `api.tcp.tokenFile` (at least 16 characters). */
import { readFile } from 'node:fs/promises';
import { LanderError } from '../base/errors.ts';

export async function readToken(file: string): Promise<string> {
  try {
    const token = (await readFile(file, 'utf8')).trim();
    if (token.length < 16) throw new Error('the token is shorter than 16 characters');
    return token;
  } catch (cause) {
    throw new LanderError('ERR_CONFIG', `Cannot start the TCP status API: cannot use the token file ${file}: ${(cause as Error).message}`, { cause, data: { file } });
  }
}
