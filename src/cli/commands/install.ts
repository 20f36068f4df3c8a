/**
 * `lander install`: one manifest poll (when a manifest is configured), one
 * reconcile (the same path `lander run` takes on every trigger), exit. The
 * server is not started: a generation with a server configured stays "new"
 * until `lander run` sees it healthy.
 */
import { loadConfigFile } from '../../config/load.ts';
import { LanderError } from '../../base/errors.ts';
import { manifestPoller } from '../../plan/manifest-source.ts';
import { Reconciler } from '../../plan/reconciler.ts';
import type { Logger } from '../../report/log.ts';
import { ProgressBars } from '../progress-bar.ts';
import { Store } from '../../store/store.ts';
import { formatBytes } from '../../base/units.ts';

export interface InstallCommandOptions {
  configPath: string;
  log: Logger;
  /** Draw progress bars and a summary here (a TTY); otherwise JSON logs only. */
  tty?: NodeJS.WriteStream;
  /** Where a failure is said in words (JSON logs carry the details). */
  stderr?: NodeJS.WritableStream;
  signal?: AbortSignal;
}

export async function installCommand(opts: InstallCommandOptions): Promise<number> {
  const { log, tty } = opts;
  const config = await loadConfigFile(opts.configPath);
  const store = await Store.open(config.root, log);
  const reconciler = new Reconciler({ config, store, log, supervise: false });
  const stop = () => void reconciler.shutdown();
  opts.signal?.addEventListener('abort', stop, { once: true });
  try {
    await reconciler.readMachineFacts();
    let manifestError: LanderError | undefined;
    const poller = manifestPoller({ config, store, log, onManifest: (m) => reconciler.setManifest(m), onError: (err) => (manifestError = err) });
    if (poller) {
      await poller.pollNow();
      poller.stop();
      if (reconciler.waitingForManifest) {
        const err = new LanderError('ERR_MANIFEST', `Cannot install: no valid manifest from ${config.manifest!.url}${manifestError ? `: ${manifestError.message}` : ''}`, { cause: manifestError });
        opts.stderr?.write(`lander install: ${err.message}\n`);
        log.error({ event: 'install.incomplete', failed: [], err }, 'no valid manifest; current generation left as it was');
        return 1;
      }
    }
    const bars = tty ? new ProgressBars(tty) : undefined;
    reconciler.on('progress', (component, _version, e) => bars?.update(component, { label: component, bytes: e.bytes, rate: e.rate, ...(e.total ? { total: e.total } : {}) }));
    const result = await reconciler.reconcile();
    bars?.draw();
    for (const o of result.components) {
      log.info({ event: 'install.result', component: o.component, version: o.version, status: o.status, sha256: o.entry?.sha256, downloadedBytes: o.downloadedBytes, durationMs: o.durationMs }, `${o.component} ${o.status}`);
    }
    if (result.errors.length > 0 || !result.generation) {
      for (const err of result.errors) opts.stderr?.write(`lander install: ${err.message}\n`);
      log.error({ event: 'install.incomplete', failed: result.components.filter((o) => o.status === 'failed').map((o) => o.component) }, 'not every component could be installed; current generation left as it was');
      return 1;
    }
    const g = result.generation;
    const switched = result.switched === true;
    log.info({ event: 'install.done', generation: g.id, switched, components: Object.fromEntries(result.components.map((o) => [o.component, o.version])) }, switched ? 'new generation is current' : 'already up to date');
    if (tty) {
      for (const o of result.components) {
        const got = o.downloadedBytes !== undefined ? ` (${formatBytes(o.downloadedBytes)} downloaded${o.durationMs !== undefined ? ` in ${(o.durationMs / 1000).toFixed(1)} s` : ''})` : '';
        tty.write(`${o.component.padEnd(12)} ${o.version.padEnd(14)} ${o.status}${got}\n`);
      }
      tty.write(switched ? `current -> generation ${g.id}\n` : `up to date (generation ${g.id})\n`);
    }
    return 0;
  } finally {
    opts.signal?.removeEventListener('abort', stop);
    await reconciler.shutdown();
    await store.close();
  }
}
