/**
 * `lander verify [--generation N] [--json]`: re-hashes a generation (default:
 * the one `current` points at) in a worker against the per-file records its
 * store entries were given at install time, and reports every difference.
 * Exit 0 only when the tree is exactly as installed. Takes no lock: it only
 * reads, so it can run beside a daemon.
 */
import { loadConfigFile } from '../../config/load.ts';
import { LanderError } from '../../base/errors.ts';
import { readSymlink } from '../../store/generation.ts';
import type { Logger } from '../../report/log.ts';
import { Store } from '../../store/store.ts';
import { formatBytes } from '../../base/units.ts';
import { runVerifyWorker } from '../../store/verify-client.ts';
import type { ExpectedFile, VerifyReport } from '../../store/verify-report.ts';

export interface VerifyCommandOptions {
  configPath: string;
  log: Logger;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** A generation id; default: the target of `current`. */
  generation?: string;
  json?: boolean;
}

export interface VerifyResult extends VerifyReport {
  generation: number;
  ok: boolean;
}

/** Verifies generation `id` (or the one `current` points at) under `root`. */
export async function verifyGeneration(root: string, log: Logger, id?: number): Promise<VerifyResult> {
  const store = await Store.open(root, log, { readOnly: true });
  // After a crash between the swap and the state write the link is ahead of state.json; the link is what runs.
  const target = await readSymlink(store.currentLink);
  const want = id ?? (target !== undefined ? Number(target.split('/').pop()) : store.state.current ?? undefined);
  if (want === undefined || !Number.isInteger(want)) throw new LanderError('ERR_NO_GENERATION', `Cannot verify: nothing is installed under ${root}`, { data: { root } });
  const g = store.state.generations.find((x) => x.id === want);
  if (!g) throw new LanderError('ERR_NO_GENERATION', `Cannot verify generation ${want}: state.json does not list it`, { data: { root, generation: want } });
  const expected: ExpectedFile[] = [];
  for (const [component, c] of Object.entries(g.components)) {
    for (const rec of await store.entryFiles({ dir: c.entry })) expected.push({ ...rec, component });
  }
  const report = await runVerifyWorker({ type: 'verify', dir: store.abs(g.dir), expected });
  return { generation: g.id, ok: report.differences.length === 0, ...report };
}

export async function verifyCommand(opts: VerifyCommandOptions): Promise<number> {
  const config = await loadConfigFile(opts.configPath);
  let id: number | undefined;
  if (opts.generation !== undefined) {
    id = Number(opts.generation);
    if (!Number.isInteger(id) || id < 1) throw new LanderError('ERR_USAGE', `Cannot verify: --generation expects a generation number, got ${JSON.stringify(opts.generation)}`);
  }
  const r = await verifyGeneration(config.root, opts.log, id);
  if (opts.json) {
    opts.stdout.write(JSON.stringify(r, null, 2) + '\n');
  } else {
    for (const d of r.differences) {
      const detail = d.expected !== undefined || d.actual !== undefined ? `: expected ${d.expected ?? '-'}, found ${d.actual ?? '-'}` : '';
      opts.stdout.write(`${d.kind.padEnd(8)} ${d.path}${d.component ? ` (${d.component})` : ''}${detail}\n`);
    }
    const summary = `generation ${r.generation}: ${r.checked} paths, ${formatBytes(r.bytes)} hashed`;
    opts.stdout.write(r.ok ? `${summary}: OK${r.unhashed ? ` (${r.unhashed} files have no recorded digest: size and mode checked)` : ''}\n` : `${summary}: ${r.differences.length} difference(s)\n`);
  }
  return r.ok ? 0 : 1;
}
