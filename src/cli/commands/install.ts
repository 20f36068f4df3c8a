/**
 * `lander install`: one manifest poll (when a manifest is configured), one
 * reconcile (the same path `lander run` takes on every trigger), exit. The
 * server is not started: a generation with a server configured stays "new"
 * until `lander run` sees it healthy. The result goes to stdout: a table, or with `--json` one summary
 * object (installed, kept, current generation, bytes downloaded, duration).
 * Progress bars (with rate and ETA) go to the terminal on stderr. Ctrl-C
 * stops the downloads, says what was kept, and exits 130: running the
 * command again resumes the partial downloads.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { loadConfigFile } from '../../config/load.ts';
import type { ComponentOutcome } from '../../plan/install-components.ts';
import { manifestPoller } from '../../plan/manifest-source.ts';
import { Reconciler } from '../../plan/reconciler.ts';
import type { Logger } from '../../report/log.ts';
import { ProgressBars } from '../progress-bar.ts';
import { Store } from '../../store/store.ts';
import { formatBytes } from '../../base/units.ts';
import { LanderError } from '../../base/errors.ts';
import { interruptSignal } from '../interrupt.ts';
import { deltaText } from './status-format.ts';

export interface InstallCommandOptions {
  configPath: string;
  log: Logger;
  /** The result: a table, or the `--json` summary. */
  stdout?: NodeJS.WritableStream;
  /** Draw progress bars here (a TTY, stderr); otherwise JSON logs only. */
  tty?: NodeJS.WriteStream;
  /** Where a failure is said in words, at a terminal (JSON logs carry the details). */
  stderr?: NodeJS.WritableStream;
  /** Print one summary object on stdout. */
  json?: boolean;
  /** Stops the install (default: the CLI's Ctrl-C). */
  signal?: AbortSignal;
}

/** What `install --json` prints: one object, after the logs. */
export interface InstallSummary {
  ok: boolean;
  interrupted: boolean;
  installed: { component: string; version: string; downloadedBytes: number; durationMs?: number }[];
  kept: { component: string; version: string; status: 'kept' | 'reused' | 'skipped-bad' }[];
  failed: { component: string; version: string; error: string; code?: string }[];
  generation: number | null;
  switched: boolean;
  downloadedBytes: number;
  /** Bytes of partial downloads left for a resume. */
  partialBytes: number;
  durationMs: number;
}

async function partialBytes(root: string): Promise<number> {
  let n = 0;
  const dir = path.join(root, 'downloads');
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (f.endsWith('.part')) n += (await stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size;
  }
  return n;
}

export function summarize(components: ComponentOutcome[], extra: Pick<InstallSummary, 'interrupted' | 'generation' | 'switched' | 'partialBytes' | 'durationMs'>): InstallSummary {
  const installed = components.filter((o) => o.status === 'installed').map((o) => ({ component: o.component, version: o.version, downloadedBytes: o.downloadedBytes ?? 0, ...(o.durationMs !== undefined ? { durationMs: o.durationMs } : {}) }));
  const failed = components.filter((o) => o.status === 'failed').map((o) => ({ component: o.component, version: o.version, error: o.error?.message ?? 'failed', ...(o.error instanceof LanderError ? { code: o.error.code } : {}) }));
  return {
    ok: failed.length === 0 && !extra.interrupted,
    interrupted: extra.interrupted,
    installed,
    kept: components.filter((o) => o.status === 'kept' || o.status === 'reused' || o.status === 'skipped-bad').map((o) => ({ component: o.component, version: o.version, status: o.status as 'kept' })),
    failed,
    generation: extra.generation,
    switched: extra.switched,
    downloadedBytes: installed.reduce((n, o) => n + o.downloadedBytes, 0),
    partialBytes: extra.partialBytes,
    durationMs: extra.durationMs,
  };
}

export async function installCommand(opts: InstallCommandOptions): Promise<number> {
  const { log, tty } = opts;
  const t0 = performance.now();
  const config = await loadConfigFile(opts.configPath);
  const signal = opts.signal ?? interruptSignal();
  const store = await Store.open(config.root, log);
  const reconciler = new Reconciler({ config, store, log, supervise: false });
  // Ctrl-C aborts the jobs (partial downloads stay for a resume) and lands nothing.
  const stop = () => void reconciler.shutdown();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await reconciler.readMachineFacts();
    let manifestError: LanderError | undefined;
    const poller = manifestPoller({ config, store, log, onManifest: (m) => reconciler.setManifest(m), onError: (err) => (manifestError = err) });
    if (poller) {
      await poller.pollNow();
      poller.stop();
      if (reconciler.waitingForManifest && !signal.aborted) {
        const err = new LanderError('ERR_MANIFEST', `Cannot install: no valid manifest from ${config.manifest!.url}${manifestError ? `: ${manifestError.message}` : ''}`, { cause: manifestError });
        if (tty) tty.write(`lander install: ${err.message}\n`);
        log.error({ event: 'install.incomplete', failed: [], err }, err.message);
        if (opts.json) opts.stdout?.write(JSON.stringify(summarize([], { interrupted: false, generation: store.state.current, switched: false, partialBytes: await partialBytes(config.root), durationMs: Math.round(performance.now() - t0) })) + '\n');
        return 1;
      }
    }
    const bars = tty ? new ProgressBars(tty) : undefined;
    reconciler.on('progress', (component, _version, e) => bars?.update(component, { label: component, bytes: e.bytes, rate: e.rate, ...(e.total ? { total: e.total } : {}), ...(e.connections > 1 ? { note: `${e.connections} connections` } : {}) }));
    const result = await reconciler.reconcile();
    bars?.draw();
    for (const o of result.components) {
      log.info({ event: 'install.result', component: o.component, version: o.version, status: o.status, sha256: o.entry?.sha256, downloadedBytes: o.downloadedBytes, reusedBytes: o.reusedBytes, durationMs: o.durationMs }, `${o.component} ${o.status}`);
    }
    const done = async (generation: number | null, switched: boolean) => summarize(result.components, {
      interrupted: signal.aborted, generation, switched, partialBytes: await partialBytes(config.root), durationMs: Math.round(performance.now() - t0),
    });
    if (signal.aborted) {
      const s = await done(store.state.current, false);
      const kept = [...s.installed.map((o) => `${o.component} ${o.version}`), ...s.kept.map((o) => `${o.component} ${o.version}`)];
      // At a terminal, said in words; the JSON summary says the same for scripts.
      const words = `lander install: interrupted. Kept: ${kept.length ? `${kept.join(', ')} (in the store)` : 'no finished component'}${s.partialBytes ? `; ${formatBytes(s.partialBytes)} of partial downloads` : ''}. The current generation is unchanged; run the same command again to resume.\n`;
      if (opts.json) opts.stdout?.write(JSON.stringify(s) + '\n');
      (tty ?? opts.stderr)?.write(words);
      return 130;
    }
    if (result.errors.length > 0 || !result.generation) {
      if (tty) for (const err of result.errors) tty.write(`lander install: ${err.message}\n`);
      log.error({ event: 'install.incomplete', failed: result.components.filter((o) => o.status === 'failed').map((o) => o.component) }, 'not every component could be installed; current generation left as it was');
      if (opts.json) opts.stdout?.write(JSON.stringify(await done(store.state.current, false)) + '\n');
      return 1;
    }
    const g = result.generation;
    const switched = result.switched === true;
    log.info({ event: 'install.done', generation: g.id, switched, components: Object.fromEntries(result.components.map((o) => [o.component, o.version])) }, switched ? 'new generation is current' : 'already up to date');
    if (opts.json) {
      opts.stdout?.write(JSON.stringify(await done(g.id, switched)) + '\n');
      return 0;
    }
    const lines = result.components.map((o) => {
      const took = o.durationMs !== undefined ? ` in ${(o.durationMs / 1000).toFixed(1)} s` : '';
      const got = o.downloadedBytes === undefined ? '' : o.reusedBytes ? ` (${deltaText(o.reusedBytes, o.downloadedBytes)}${took})` : ` (${formatBytes(o.downloadedBytes)} downloaded${took})`;
      return `${o.component.padEnd(12)} ${o.version.padEnd(14)} ${o.status}${got}\n`;
    });
    opts.stdout?.write(lines.join('') + (switched ? `current -> generation ${g.id}\n` : `up to date (generation ${g.id})\n`));
    return 0;
  } finally {
    signal.removeEventListener('abort', stop);
    await reconciler.shutdown();
    await store.close();
  }
}
