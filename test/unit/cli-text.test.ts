/** Pure text of the CLI: "did you mean", the ETA, the bar, and the help table. */
import { describe, expect, it } from 'vitest';
import { editDistance, suggest } from '../../src/base/suggest.ts';
import { formatEta, renderBar } from '../../src/cli/progress-bar.ts';
import { COMMANDS, commandHelp } from '../../src/cli/commands-table.ts';

describe('suggest', () => {
  it('counts a swap of two neighbours as one edit', () => {
    expect(editDistance('jsno', 'json')).toBe(1);
    expect(editDistance('sha256Ulr', 'sha256Url')).toBe(1);
    expect(editDistance('abc', 'abc')).toBe(0);
    expect(editDistance('', 'abc')).toBe(3);
  });
  it('offers the nearest known word, and nothing for a word far from all', () => {
    expect(suggest('sha256Ulr', ['sha256', 'sha256Url', 'url'])).toBe('sha256Url');
    expect(suggest('instal', ['install', 'status'])).toBe('install');
    expect(suggest('zzz', ['install', 'status'])).toBeUndefined();
    expect(suggest('ROOT', ['root'])).toBe('root');
  });
});

describe('progress bar', () => {
  it('formats the time left', () => {
    expect([formatEta(0), formatEta(41.2), formatEta(185), formatEta(7800), formatEta(1e9)]).toEqual(['0s', '42s', '3m05s', '2h10m', '>99h']);
  });
  it('shows rate and ETA when both the total and a rate are known, neither otherwise', () => {
    expect(renderBar({ label: 'server', bytes: 1024 * 1024, total: 4 * 1024 * 1024, rate: 1024 * 1024 })).toMatch(/ 25%  1\.0 MiB \/ 4\.0 MiB  1\.0 MiB\/s  ETA 3s$/);
    expect(renderBar({ label: 'server', bytes: 1024, rate: 1024 })).not.toMatch(/ETA/);
    expect(renderBar({ label: 'server', bytes: 1024, total: 4096, rate: 0 })).not.toMatch(/ETA|\/s/);
  });
});

describe('help table', () => {
  it('every command has usage, options with help, exit codes and an example', () => {
    for (const c of COMMANDS) {
      const h = commandHelp(c);
      expect(h, c.name).toMatch(new RegExp(`^Usage:\\n  lander ${c.name}`, 'm'));
      expect(c.exits.length, c.name).toBeGreaterThan(0);
      for (const [name, o] of Object.entries(c.options)) expect(h, `${c.name} --${name}`).toContain(`--${name}${o.arg ? ` ${o.arg}` : ''}`);
      expect(h).toMatch(/Example:\n  .*lander /);
    }
  });
});

describe('Deno permission errors in lander words', () => {
  it('names the access, the flag to add and every flag lander needs', async () => {
    const { permissionMessage } = await import('../../src/base/runtime-permission.ts');
    const denied = Object.assign(new Error('Requires sys access to "hostname", run again with the --allow-sys flag'), { name: 'NotCapable' });
    expect(permissionMessage(new Error('Cannot open the store', { cause: denied }))).toBe('Cannot run lander: Deno denied sys access to "hostname"; add --allow-sys=hostname (lander needs: deno run --allow-env --allow-sys=hostname,uid,statfs --allow-read --allow-write --allow-net --allow-run src/main.ts ...)');
    expect(permissionMessage(new Error('ENOENT'))).toBeUndefined();
  });
});
