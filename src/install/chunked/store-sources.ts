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

/** @param max entries to read @default 3 */
export async function reuseSources(store: SourceStore, component: string, max = 3): Promise<LocalSource[]> {
  const entries = store.state.entries.filter((e) => e.component === component).sort((a, b) => b.installedAt.localeCompare(a.installedAt)).slice(0, max);
  const out: LocalSource[] = [];
  for (const e of entries) {
    const files = await store.entryFiles(e);
    const file = await store.entryIndex(e);
    // A kept index was verified when its entry was installed; one that no longer decodes is simply not used.
    let index;
    try {
      index = file ? decodeIndex(file) : undefined;
    } catch {
      index = undefined;
    }
    out.push({ dir: path.resolve(store.abs(e.dir)), files, ...(index && file ? { index, indexFile: file } : {}) });
  }
  return out;
}
