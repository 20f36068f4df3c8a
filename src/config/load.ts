/** Reads and validates the config file from disk. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseConfig, type Config } from './schema.ts';
import { ConfigError } from '../base/errors.ts';

export const DEFAULT_CONFIG_PATH = '/etc/lander/lander.json';

export function configPathFrom(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.LANDER_CONFIG ?? DEFAULT_CONFIG_PATH);
}

export async function loadConfigFile(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist (pass --config FILE or set LANDER_CONFIG)' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a folder' : (cause as Error).message;
    throw new ConfigError(`Cannot read the config file ${file}: ${why}`, { cause, data: { source: file, issues: [{ path: '(file)', message: why }] } });
  }
  return parseConfig(text, file);
}
