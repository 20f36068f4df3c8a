/**
 * The event catalogue (src/report/event-catalogue.ts) against the sources and the README:
 * every event name written in src/ or workers/ is catalogued and well formed,
 * and the README's table is exactly the one generated from the catalogue.
 * (test/e2e/event-catalogue.test.ts checks the events real runs emit.)
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EVENT_NAME, EVENTS, eventSpec, renderEventTable } from '../../src/report/event-catalogue.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(path.join(REPO, dir), { withFileTypes: true })) {
    const rel = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sources(rel)));
    else if (e.name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

/** `event: 'x'` in log objects, and `this.log('level', 'x', ...)` in the install pipeline. */
async function namesInSources(): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const f of [...(await sources('src')), ...(await sources('workers'))]) {
    if (f.endsWith(path.join('src', 'report', 'event-catalogue.ts'))) continue;
    const text = await readFile(path.join(REPO, f), 'utf8');
    for (const m of text.matchAll(/\bevent: '([^']+)'/g)) found.set(m[1]!, f);
    for (const m of text.matchAll(/\blog\('(?:trace|debug|info|warn|error)', '([^']+)'/g)) found.set(m[1]!, f);
  }
  return found;
}

describe('event catalogue', () => {
  it('names every event the sources log, and each name is well formed', async () => {
    const found = await namesInSources();
    expect(found.size).toBeGreaterThan(40);
    const missing = [...found].filter(([n]) => !eventSpec(n)).map(([n, f]) => `${n} (${f})`);
    expect(missing, 'add these to src/report/event-catalogue.ts (level, fields, what to do), then regenerate the README table').toEqual([]);
    const badNames = Object.keys(EVENTS).filter((n) => !EVENT_NAME.test(n));
    expect(badNames).toEqual([]);
  });

  it('lists no event that the sources never log', async () => {
    const found = await namesInSources();
    // status-format's SSE `type`s are not log events; everything else in the catalogue must appear in code.
    const unused = Object.keys(EVENTS).filter((n) => !found.has(n));
    expect(unused).toEqual([]);
  });

  it('the README table is the generated one', async () => {
    const readme = await readFile(path.join(REPO, 'README.md'), 'utf8');
    const m = /<!-- events:begin -->\n([\s\S]*?)\n<!-- events:end -->/.exec(readme);
    expect(m, 'README.md needs <!-- events:begin --> ... <!-- events:end -->').not.toBeNull();
    // To update: node -e "import('./dist/src/report/event-catalogue.js').then(m => console.log(m.renderEventTable()))"
    expect(m![1]).toBe(renderEventTable());
  });
});
