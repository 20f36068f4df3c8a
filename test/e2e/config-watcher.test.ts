/**
 * The config watcher against real files in a temp folder, saved the ways
 * editors save them. No sleeps for positive outcomes: expect.poll waits for
 * the callback. "Exactly once" is proven by a later, different edit whose
 * config must arrive as the next one (reads are serialized).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/schema.ts';
import { watchConfig, type ConfigWatcher } from '../../src/config/watch.ts';
import type { ConfigError } from '../../src/base/errors.ts';
import { createLogger } from '../../src/report/log.ts';

type Rec = Record<string, any>;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const POLL = { timeout: 10_000, interval: 20 };

function configText(version: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    root: '/var/lib/lander-test',
    components: { server: { version, url: 'https://example.invalid/s-{version}.tar.gz', sha256: 'a'.repeat(64) } },
    ...extra,
  }, null, 2);
}

interface Harness {
  dir: string;
  file: string;
  configs: Config[];
  invalid: ConfigError[];
  records: Rec[];
  watcher: ConfigWatcher;
  /** Versions of the configs received so far. */
  versions(): (string | undefined)[];
}

async function setup(opts: { debounceMs?: number; initial?: string | null } = {}): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lander-cw-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'lander.json');
  // Neighbours in the folder must not trigger reads.
  fs.writeFileSync(path.join(dir, 'other.json'), '{}');
  if (opts.initial !== null) fs.writeFileSync(file, opts.initial ?? configText('1.0.0'));
  const records: Rec[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void records.push(JSON.parse(s)) } });
  const configs: Config[] = [];
  const invalid: ConfigError[] = [];
  const watcher = watchConfig(file, {
    debounceMs: opts.debounceMs ?? 100,
    log,
    onConfig: (c) => configs.push(c),
    onInvalid: (e) => invalid.push(e),
  });
  cleanups.push(() => watcher.close());
  await watcher.ready;
  return { dir, file, configs, invalid, records, watcher, versions: () => configs.map((c) => c.components.server?.version) };
}

describe('watchConfig', () => {
  it('primes silently on start, then sees an in-place write', async () => {
    const h = await setup();
    expect(h.configs).toHaveLength(0);
    fs.writeFileSync(h.file, configText('1.0.1'));
    await expect.poll(() => h.versions(), POLL).toEqual(['1.0.1']);
    expect(h.records.filter((r) => r.event === 'config.loaded')).toEqual([expect.objectContaining({ level: 'info', file: h.file })]);
  });

  it('sees a write-temp-then-rename save (vim, VS Code, mv), twice in a row', async () => {
    const h = await setup();
    for (const v of ['2.0.0', '2.0.1']) {
      const tmp = path.join(h.dir, `.lander.json.${v}.tmp`);
      fs.writeFileSync(tmp, configText(v));
      fs.renameSync(tmp, h.file);
      await expect.poll(() => h.versions().at(-1), POLL).toBe(v);
    }
    expect(h.versions()).toEqual(['2.0.0', '2.0.1']);
  });

  it('sees a delete-then-create save as one change', async () => {
    const h = await setup();
    fs.unlinkSync(h.file);
    fs.writeFileSync(h.file, configText('3.0.0'));
    await expect.poll(() => h.versions(), POLL).toEqual(['3.0.0']);
    expect(h.invalid).toHaveLength(0);
  });

  it('reports a file that stays missing, and picks it up when it is recreated', async () => {
    const h = await setup();
    fs.unlinkSync(h.file);
    await expect.poll(() => h.invalid.length, POLL).toBe(1);
    expect(h.invalid[0]!.code).toBe('ERR_CONFIG');
    expect(h.invalid[0]!.data.issues).toEqual([{ path: '(file)', message: expect.stringMatching(/does not exist/) }]);
    // The same text as before the delete is still news: the caller was told the file was gone.
    fs.writeFileSync(h.file, configText('1.0.0'));
    await expect.poll(() => h.versions(), POLL).toEqual(['1.0.0']);
  });

  it('also starts when the file does not exist yet', async () => {
    const h = await setup({ initial: null });
    fs.writeFileSync(h.file, configText('4.0.0'));
    await expect.poll(() => h.versions(), POLL).toEqual(['4.0.0']);
  });

  it('rejects invalid JSON and invalid fields by path, then takes a valid edit', async () => {
    const h = await setup();
    fs.writeFileSync(h.file, '{"root": ');
    await expect.poll(() => h.invalid.length, POLL).toBe(1);
    expect(h.invalid[0]!.data.issues).toEqual([{ path: '(file)', message: expect.stringMatching(/Invalid JSON/) }]);

    fs.writeFileSync(h.file, configText('../evil'));
    await expect.poll(() => h.invalid.length, POLL).toBe(2);
    expect(h.invalid[1]!.data.issues).toEqual([{ path: 'components.server.version', message: expect.any(String) }]);
    const warn = h.records.filter((r) => r.event === 'config.invalid');
    expect(warn).toHaveLength(2);
    expect(warn[1]).toMatchObject({ level: 'warn', file: h.file, issues: [{ path: 'components.server.version' }] });

    fs.writeFileSync(h.file, configText('5.0.0'));
    await expect.poll(() => h.versions(), POLL).toEqual(['5.0.0']);
    expect(h.invalid).toHaveLength(2);
  });

  it('merges two quick edits within the debounce into one config with the final content', async () => {
    const h = await setup({ debounceMs: 400 });
    fs.writeFileSync(h.file, configText('6.0.0'));
    fs.writeFileSync(h.file, configText('6.0.1'));
    await expect.poll(() => h.versions(), POLL).toEqual(['6.0.1']);
    // A later edit arrives next: nothing else came in between.
    fs.writeFileSync(h.file, configText('6.0.2'));
    await expect.poll(() => h.versions().length, POLL).toBe(2);
    expect(h.versions()).toEqual(['6.0.1', '6.0.2']);
  });

  it('ignores a save with unchanged content', async () => {
    const h = await setup();
    const same = fs.readFileSync(h.file, 'utf8');
    fs.writeFileSync(h.file, same);
    const now = new Date();
    fs.utimesSync(h.file, now, now);
    await expect.poll(() => h.records.some((r) => r.event === 'config.unchanged'), POLL).toBe(true);
    fs.writeFileSync(h.file, configText('7.0.0'));
    await expect.poll(() => h.versions().length, POLL).toBe(1);
    expect(h.versions()).toEqual(['7.0.0']);
  });

  it('reload() reads now, without waiting for the watcher or the debounce', async () => {
    const h = await setup({ debounceMs: 60_000 });
    fs.writeFileSync(h.file, configText('8.0.0'));
    await h.watcher.reload();
    expect(h.versions()).toEqual(['8.0.0']);
    // Unchanged text: a second reload reports nothing.
    await h.watcher.reload();
    expect(h.versions()).toEqual(['8.0.0']);
  });

  it('reports the initial file when it differs from the text the caller loaded', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lander-cw-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'lander.json');
    fs.writeFileSync(file, configText('9.0.1'));
    const configs: Config[] = [];
    const w = watchConfig(file, { log: createLogger({ level: 'silent' }), initialText: configText('9.0.0'), onConfig: (c) => configs.push(c), onInvalid: () => {} });
    cleanups.push(() => w.close());
    await w.ready;
    expect(configs.map((c) => c.components.server?.version)).toEqual(['9.0.1']);
  });

  it('leaves no watcher or timer behind after close, and calls nothing after it', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const h = await setup({ debounceMs: 50 });
    fs.writeFileSync(h.file, configText('10.0.0'));
    await h.watcher.close();
    fs.writeFileSync(h.file, configText('10.0.1'));
    await h.watcher.reload();
    await new Promise((r) => setTimeout(r, 200)); // a negative: give a stray timer the chance to fire
    expect(h.configs).toHaveLength(0);
    const after = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const count = (xs: string[], k: string) => xs.filter((x) => x === k).length;
    expect(count(after, 'FSEventWrap')).toBeLessThanOrEqual(count(before, 'FSEventWrap'));
    expect(count(after, 'Timeout')).toBeLessThanOrEqual(count(before, 'Timeout'));
  });
});
