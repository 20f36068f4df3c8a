/**
 * Watches the config file and hands each new valid config to the daemon.
 *
 * Editors save in three ways: write in place, write a temp file and rename it
 * over the original (vim, VS Code, `mv tmp lander.json`), or delete and
 * create. A watch on the file itself follows its inode and goes deaf after a
 * rename-over, so the parent folder is watched, filtered to the one name.
 * Bursts of events are debounced, reads are serialized, and a text equal to
 * the last one read is ignored.
 */
import path from 'node:path';
import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'chokidar';
import { parseConfig, type Config } from './schema.ts';
import { ConfigError } from '../base/errors.ts';
import type { Logger } from '../report/log.ts';

export interface WatchConfigOptions {
  /** Quiet time after the last file event before the file is read. @default 200 */
  debounceMs?: number;
  log: Logger;
  /** A new, valid config (its text differs from the last one read). */
  onConfig(config: Config): void;
  /** The file changed but is unreadable or invalid; the caller keeps its last good config. `err.data.issues` names each field path. */
  onInvalid(err: ConfigError): void;
  /**
   * The text the caller already loaded. Once the watch is ready the file is
   * read once: with `initialText` a different text is reported (an edit
   * between the caller's load and the watch is not lost); without it, that
   * first read only primes the comparison and reports nothing.
   */
  initialText?: string;
}

/** What one read found. */
type ReloadResult = 'loaded' | 'unchanged' | 'invalid';

export interface ConfigWatcher {
  /** Resolves once the folder is watched and the first read is done; events before that may be missed. */
  readonly ready: Promise<void>;
  /** Reads the file now (SIGHUP, `POST /check`), without waiting for the debounce; an unchanged text is still ignored. */
  reload(): Promise<void>;
  /** Stops watching; no callback runs after it resolves. */
  close(): Promise<void>;
}

/** The text read, or a missing/unreadable file (kept apart so a recreated file with the old text is reported). */
type Seen = { text: string } | { missing: true };

/**
 * @example
 * const w = watchConfig('/etc/lander/lander.json', { log, onConfig: apply, onInvalid: report });
 * process.on('SIGHUP', () => void w.reload());
 */
export function watchConfig(file: string, opts: WatchConfigOptions): ConfigWatcher {
  const target = path.resolve(file);
  const dir = path.dirname(target);
  const debounceMs = opts.debounceMs ?? 200;
  const log = opts.log;
  let last: Seen | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  // Reads run one after another: two overlapping reads could report an older text last.
  let chain: Promise<unknown> = Promise.resolve();

  const read = (prime: boolean): Promise<ReloadResult> => {
    const run = chain.then(() => (closed ? ('unchanged' as const) : readOnce(prime)));
    chain = run.catch(() => undefined);
    return run;
  };

  const readOnce = async (prime: boolean): Promise<ReloadResult> => {
    let text: string;
    try {
      text = await readFile(target, 'utf8');
    } catch (cause) {
      const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
      if (closed || (missing && last !== undefined && 'missing' in last)) return 'unchanged';
      last = { missing: true };
      if (prime) return 'unchanged';
      // A save by rename or delete+create is over long before the debounce
      // ends; a file still missing after it is really gone (for now).
      const message = missing ? 'The file does not exist (deleted?); keeping the last good config until it is back' : (cause as Error).message;
      const err = new ConfigError(`Cannot read the config file ${target}: ${(cause as Error).message}`, { cause, data: { source: target, issues: [{ path: '(file)', message }] } });
      reportInvalid(err);
      return 'invalid';
    }
    if (closed) return 'unchanged';
    if (last !== undefined && 'text' in last && last.text === text) {
      log.debug({ event: 'config.unchanged', file: target }, 'config file touched, content unchanged');
      return 'unchanged';
    }
    last = { text };
    if (prime && opts.initialText === undefined) return 'unchanged';
    if (prime && opts.initialText === text) return 'unchanged';
    let config: Config;
    try {
      config = parseConfig(text, target);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      reportInvalid(err);
      return 'invalid';
    }
    log.info({ event: 'config.loaded', file: target }, 'config loaded');
    opts.onConfig(config);
    return 'loaded';
  };

  const reportInvalid = (err: ConfigError) => {
    const issues = err.issues.length > 0 ? err.issues : [{ path: '(file)', message: err.message }];
    log.warn({ event: 'config.invalid', file: target, issues }, 'config change rejected; keeping the last good config');
    opts.onInvalid(err);
  };

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void read(false).catch((err: unknown) => log.error({ event: 'config.watch-error', file: target, err }, 'config read failed'));
    }, debounceMs);
  };

  // depth 0 and the filter keep chokidar from setting up watchers for the
  // folder's other files (an /etc folder can hold many). `atomic` is off:
  // its unlink→add merging only delays events the debounce merges anyway.
  const watcher: FSWatcher = watch(dir, {
    depth: 0,
    ignoreInitial: true,
    atomic: false,
    persistent: true,
    ignored: (p: string) => {
      const abs = path.resolve(p);
      return abs !== dir && abs !== target;
    },
  });
  watcher.on('all', (event, p) => {
    if (path.resolve(p) !== target) return;
    log.trace({ event: 'config.fs-event', file: target, kind: event }, 'config file event');
    schedule();
  });
  watcher.on('error', (err) => log.warn({ event: 'config.watch-error', file: target, err }, 'config watcher error'));

  let watching!: () => void;
  const ready = new Promise<void>((resolve) => {
    watching = resolve;
    watcher.once('ready', () => resolve());
  }).then(() => read(true).then(() => undefined));
  // A failed first read surfaces through reload() or the next event; `ready` must not reject unobserved.
  ready.catch((err: unknown) => log.error({ event: 'config.watch-error', file: target, err }, 'config first read failed'));

  return {
    ready,
    reload: () => {
      clearTimeout(timer);
      timer = undefined;
      return read(false).then(() => undefined);
    },
    close: async () => {
      closed = true;
      watching(); // a close before chokidar's 'ready' must not leave `ready` pending
      clearTimeout(timer);
      timer = undefined;
      await watcher.close();
      await chain;
    },
  };
}
