/** `lander install`: bring every component to its desired version, land it, exit. */
import { configSpecs } from '../../config/schema.ts';
import { loadConfigFile } from '../../config/load.ts';
import { installAll, land } from '../../plan/install-all.ts';
import type { Logger } from '../../report/log.ts';
import { ProgressBars } from '../progress-bar.ts';
import { Store } from '../../store/store.ts';
import { formatBytes } from '../../base/units.ts';
import { deltaText } from './status-format.ts';

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
  try {
    const bars = tty ? new ProgressBars(tty) : undefined;
    const result = await installAll({
      config,
      specs: configSpecs(config),
      store,
      log,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onProgress: (component, e) => bars?.update(component, { label: component, bytes: e.bytes, rate: e.rate, ...(e.total ? { total: e.total } : {}) }),
    });
    bars?.draw();
    for (const o of result.components) {
      log.info({ event: 'install.result', component: o.component, version: o.version, status: o.status, sha256: o.entry?.sha256, downloadedBytes: o.downloadedBytes, reusedBytes: o.reusedBytes, durationMs: o.durationMs }, `${o.component} ${o.status}`);
    }
    if (result.errors.length > 0) {
      for (const err of result.errors) opts.stderr?.write(`lander install: ${err.message}\n`);
      log.error({ event: 'install.incomplete', failed: result.components.filter((o) => o.status === 'failed').map((o) => o.component) }, 'not every component could be installed; current generation left as it was');
      return 1;
    }
    // Without a supervisor nobody can vouch for the server: the generation stays "new" until `lander run` sees it healthy.
    const before = store.state.current;
    const g = (await land(result, { store, log, keepGenerations: config.keepGenerations, markGood: !config.server }))!;
    const switched = before !== g.id;
    log.info({ event: 'install.done', generation: g.id, switched, components: Object.fromEntries(result.components.map((o) => [o.component, o.version])) }, switched ? 'new generation is current' : 'already up to date');
    if (tty) {
      for (const o of result.components) {
        const took = o.durationMs !== undefined ? ` in ${(o.durationMs / 1000).toFixed(1)} s` : '';
        const got = o.downloadedBytes === undefined ? '' : o.reusedBytes ? ` (${deltaText(o.reusedBytes, o.downloadedBytes)}${took})` : ` (${formatBytes(o.downloadedBytes)} downloaded${took})`;
        tty.write(`${o.component.padEnd(12)} ${o.version.padEnd(14)} ${o.status}${got}\n`);
      }
      tty.write(switched ? `current -> generation ${g.id}\n` : `up to date (generation ${g.id})\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}
