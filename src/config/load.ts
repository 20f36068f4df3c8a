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
    throw new ConfigError(`Cannot read the config file ${file}: ${(cause as Error).message}`, { cause, data: { source: file, issues: [{ path: '(file)', message: (cause as Error).message }] } });
  }
  return parseConfig(text, file);
}
