/** `lander status` read straight from the store, for when no daemon is running. */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../report/log.ts';
import { Store } from '../../store/store.ts';
import { formatBytes } from '../../base/units.ts';

export interface StoreStatus {
  root: string;
  current: number | null;
  components: Record<string, { desired: string; installed?: string; sha256?: string; bad?: string[] }>;
  generations: { id: number; status: string; components: Record<string, string>; createdAt: string }[];
  disk: { storeBytes: number; partialDownloadBytes: number };
}

/** The store under `root`; with a valid `config`, its components' desired versions too (else '(config invalid)'). */
export async function readStoreStatus(root: string, config: Config | undefined, log: Logger): Promise<StoreStatus> {
  const store = await Store.open(root, log, { readOnly: true });
  const cur = store.current();
  const components: StoreStatus['components'] = {};
  const names = config ? Object.keys(config.components) : [...new Set([...Object.keys(cur?.components ?? {}), ...Object.keys(store.state.bad)])];
  for (const name of names) {
    const c = cur?.components[name];
    const desired = config ? config.components[name]!.version ?? '(manifest)' : '(unknown)';
    components[name] = { desired, ...(c ? { installed: c.version, sha256: c.sha256 } : {}), ...(store.state.bad[name]?.length ? { bad: store.state.bad[name] } : {}) };
  }
  let partialDownloadBytes = 0;
  try {
    for (const f of await readdir(path.join(root, 'downloads'))) {
      if (f.endsWith('.part')) partialDownloadBytes += (await stat(path.join(root, 'downloads', f))).size;
    }
  } catch {
    // No downloads folder yet: nothing partial.
  }
  return {
    root,
    current: store.state.current,
    components,
    generations: store.state.generations.map((g) => ({ id: g.id, status: g.status, createdAt: g.createdAt, components: Object.fromEntries(Object.entries(g.components).map(([n, c]) => [n, c.version])) })),
    disk: { storeBytes: store.state.entries.reduce((n, e) => n + e.extractedBytes, 0), partialDownloadBytes },
  };
}

export function formatStoreStatus(s: StoreStatus): string {
  const lines = [`root        ${s.root}`, `current     ${s.current === null ? '(none)' : `generation ${s.current}`}`, ''];
  lines.push('component     desired         installed       sha256');
  for (const [n, c] of Object.entries(s.components)) {
    lines.push(`${n.padEnd(13)} ${c.desired.padEnd(15)} ${(c.installed ?? '-').padEnd(15)} ${c.sha256?.slice(0, 16) ?? '-'}${c.bad ? `  bad: ${c.bad.join(', ')}` : ''}`);
  }
  lines.push('', 'generations');
  for (const g of s.generations) lines.push(`  ${String(g.id).padEnd(4)} ${g.status.padEnd(5)} ${Object.entries(g.components).map(([n, v]) => `${n}@${v}`).join(' ')}${g.id === s.current ? '  <- current' : ''}`);
  lines.push('', `disk        store ${formatBytes(s.disk.storeBytes)}, partial downloads ${formatBytes(s.disk.partialDownloadBytes)}`);
  return lines.join('\n') + '\n';
}
