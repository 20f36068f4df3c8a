/**
 * The installed store entries a chunked install may reuse from: the other
 * entries of the same component, newest first (a few: each is read whole
 * into the planner's maps), with their file records and kept indexes.
 */
import path from 'node:path';
import type { FileRecord } from '../../../workers/protocol.ts';
import { decodeIndex } from './index-format.ts';
import type { LocalSource } from './reuse-plan.ts';

/** What this needs of the store (src/store/store.ts). */
export interface SourceStore {
  readonly state: { entries: readonly { component: string; dir: string; installedAt: string }[] };
  abs(rel: string): string;
  entryFiles(e: { dir: string }): Promise<FileRecord[]>;
  entryIndex(e: { dir: string }): Promise<Buffer | undefined>;
}

/**
 * Decodes each source's kept index from its file (in the worker that runs
 * the install: a big index costs ~150 ms to decode). A file that crossed a
 * thread as a Uint8Array becomes a Buffer again.
 */
export function decodeSources(sources: readonly LocalSource[]): LocalSource[] {
  return sources.map((s) => {
    if (!s.indexFile) return s;
    const u = s.indexFile as Uint8Array;
    const file = Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
    try {
      return { ...s, index: s.index ?? decodeIndex(file), indexFile: file };
    } catch {
      const { indexFile: _bad, index: _none, ...rest } = s;
      return rest; // verified when its entry was installed; one that no longer decodes is simply not used
    }
  });
}

/**
 * The entries with their file records and kept index files, undecoded: the
 * install decodes them where it runs (decodeSources, in its worker).
 * @param max entries to read @default 3
 */
export async function reuseSources(store: SourceStore, component: string, max = 3): Promise<LocalSource[]> {
  const entries = store.state.entries.filter((e) => e.component === component).sort((a, b) => b.installedAt.localeCompare(a.installedAt)).slice(0, max);
  const out: LocalSource[] = [];
  for (const e of entries) {
    const files = await store.entryFiles(e);
    const file = await store.entryIndex(e);
    out.push({ dir: path.resolve(store.abs(e.dir)), files, ...(file ? { indexFile: file } : {}) });
  }
  return out;
}
