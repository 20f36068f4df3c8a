/**
 * `state.json`: what is installed, which generations exist, which is current,
 * and which component versions failed on the server. The decision whether a
 * component needs fetching reads this file; it never runs a binary.
 */
import { readFile } from 'node:fs/promises';
import { StoreError } from '../base/errors.ts';
import { writeFileAtomic } from '../base/atomic-file.ts';

/** One extracted, verified, read-only archive in `store/`. */
export interface StoreEntry {
  component: string;
  version: string;
  sha256: string;
  /** Relative to root: `store/<component>/<version>-<sha8>`. */
  dir: string;
  /** First URL it was fetched from, to recognise the same release without refetching its sidecar. */
  source: string;
  /**
   * Other (version, URL) pairs whose digest turned out to be this entry's: an
   * identical archive republished under a new version. The store knows an
   * entry by (component, digest); these let the planner recognise the new
   * version without fetching its sidecar again. Absent in older state files.
   */
  aliases?: { version: string; source: string }[];
  archiveBytes: number;
  extractedBytes: number;
  files: number;
  installedAt: string;
}

/** One component of a generation to land: a store entry and the version it is landed as (an entry may serve several versions). */
export interface Selected {
  component: string;
  version: string;
  entry: StoreEntry;
}

export interface GenerationComponent {
  version: string;
  sha256: string;
  /** The store entry's `dir`. */
  entry: string;
}

export interface Generation {
  id: number;
  /** Relative to root: `generations/<id>`. */
  dir: string;
  components: Record<string, GenerationComponent>;
  createdAt: string;
  /** `good` once the server ran healthy from it (or no server is configured); `bad` after a rollback away from it. */
  status: 'new' | 'good' | 'bad';
}

export interface State {
  schema: 1;
  entries: StoreEntry[];
  generations: Generation[];
  current: number | null;
  /** Component versions that failed on the server; not retried until the desired version changes. */
  bad: Record<string, string[]>;
  /**
   * The last signed manifest accepted from each manifest URL, so a replayed
   * older one is refused even after a restart. Absent in files written
   * before signed manifests; read as `{}`.
   */
  signedManifests: Record<string, AcceptedManifest>;
}

export interface AcceptedManifest {
  sequence: number;
  /** Key id (as minisign prints it) of the key that signed it. */
  keyId: string;
  acceptedAt: string;
}

export function emptyState(): State {
  return { schema: 1, entries: [], generations: [], current: null, bad: {}, signedManifests: {} };
}

export async function loadState(file: string): Promise<State> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new StoreError('ERR_STATE', `Cannot read ${file}: ${(err as Error).message}`, { cause: err, data: { file } });
  }
  let value: State;
  try {
    value = JSON.parse(text) as State;
  } catch (cause) {
    throw new StoreError('ERR_STATE', `Cannot read ${file}: it is not valid JSON; move it aside and run lander again to rebuild it`, { cause, data: { file } });
  }
  if (value?.schema !== 1 || !Array.isArray(value.entries) || !Array.isArray(value.generations)) {
    throw new StoreError('ERR_STATE', `Cannot read ${file}: unknown layout (schema ${String(value?.schema)})`, { data: { file } });
  }
  value.bad ??= {};
  value.signedManifests ??= {};
  return value;
}

export async function saveState(file: string, state: State): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(state, null, 2) + '\n');
}

export function currentGeneration(state: State): Generation | undefined {
  return state.generations.find((g) => g.id === state.current);
}
