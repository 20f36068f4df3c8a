import { describe, expect, it } from 'vitest';
import { planComponents, planLanding } from '../../src/plan/planner.ts';
import type { ComponentSpec } from '../../src/config/schema.ts';
import type { Generation, StoreEntry } from '../../src/store/state.ts';

const spec = (name: string, version: string, extra: Partial<ComponentSpec> = {}): ComponentSpec => ({
  name, version, urls: [`http://h/${name}-${version}.tgz`], sha256Url: `http://h/${name}-${version}.tgz.sha256`, restart: true, ...extra,
});
const entry = (component: string, version: string, sha = component + version): StoreEntry => ({
  component, version, sha256: sha.padEnd(64, '0'), dir: `store/${component}/${version}`, source: `http://h/${component}-${version}.tgz`,
  archiveBytes: 1, extractedBytes: 1, files: 1, installedAt: '',
});
const gen = (id: number, entries: StoreEntry[]): Generation => ({
  id, dir: `generations/${id}`, createdAt: '', status: 'good',
  components: Object.fromEntries(entries.map((e) => [e.component, { version: e.version, sha256: e.sha256, entry: e.dir }])),
});

describe('planComponents', () => {
  it('keeps what is installed at the desired version and fetches the rest, server first', () => {
    const libs = entry('cuda-libs', 'cu128-v1');
    const plan = planComponents({ components: [spec('cuda-libs', 'cu128-v1'), spec('server', '0.3.2')], entries: [libs, entry('server', '0.3.1')], current: undefined, bad: {} });
    expect(plan.map((a) => [a.component, a.action])).toEqual([['server', 'fetch'], ['cuda-libs', 'keep']]);
  });

  it('does not trust a version match when the pinned digest differs', () => {
    const plan = planComponents({ components: [spec('server', '1', { sha256: 'f'.repeat(64) })], entries: [entry('server', '1')], bad: {} });
    expect(plan[0]!.action).toBe('fetch');
  });

  it('does not retry a version marked bad, and falls back to the current one', () => {
    const old = entry('server', '1');
    const plan = planComponents({ components: [spec('server', '2')], entries: [old], current: gen(1, [old]), bad: { server: ['2'] } });
    expect(plan[0]).toMatchObject({ action: 'skip-bad', version: '2', fallback: { component: 'server', version: '1', entry: old } });
  });
});

describe('store identity: (component, digest)', () => {
  it('a pinned digest already in the store is kept under the new version, whatever version it was stored as', () => {
    const old = entry('server', '1', 'abc');
    const plan = planComponents({ components: [spec('server', '1.0.1', { sha256: old.sha256 })], entries: [old], current: gen(1, [old]), bad: {} });
    expect(plan[0]).toEqual({ component: 'server', action: 'keep', version: '1.0.1', entry: old });
  });

  it('a sidecar digest is known without the network only for a (version, URL) the entry was reached by', () => {
    const old = entry('server', '1', 'abc');
    expect(planComponents({ components: [spec('server', '2')], entries: [old], bad: {} })[0]!.action).toBe('fetch');
    const aliased = { ...old, aliases: [{ version: '2', source: 'http://h/server-2.tgz' }] };
    expect(planComponents({ components: [spec('server', '2')], entries: [aliased], bad: {} })[0]).toMatchObject({ action: 'keep', version: '2', entry: aliased });
    // Same version, another URL: the digest is not known.
    expect(planComponents({ components: [spec('server', '2', { urls: ['http://other/s.tgz'] })], entries: [aliased], bad: {} })[0]!.action).toBe('fetch');
  });

  it('an entry of another component never satisfies, even with the same digest', () => {
    const libs = entry('cuda-libs', '1', 'same');
    expect(planComponents({ components: [spec('server', '1', { sha256: libs.sha256 })], entries: [libs], bad: {} })[0]!.action).toBe('fetch');
  });
});

describe('planLanding', () => {
  it('restarts when a restart component changes, not when only a no-restart one does', () => {
    const s1 = entry('server', '1');
    const l1 = entry('cuda-libs', 'a');
    const cur = gen(1, [s1, l1]);
    const specs = [spec('server', '1'), spec('cuda-libs', 'b', { restart: false })];
    expect(planLanding([s1, entry('cuda-libs', 'b')], specs, cur)).toEqual({ changed: ['cuda-libs'], removed: [], restart: false });
    expect(planLanding([entry('server', '2'), l1], specs, cur)).toEqual({ changed: ['server'], removed: [], restart: true });
    expect(planLanding([s1, l1], specs, cur)).toEqual({ changed: [], removed: [], restart: false });
  });

  it('restarts on a first landing and when a component is dropped', () => {
    const s1 = entry('server', '1');
    expect(planLanding([s1], [spec('server', '1')], undefined).restart).toBe(true);
    expect(planLanding([s1], [spec('server', '1')], gen(1, [s1, entry('cuda-libs', 'a')]))).toEqual({ changed: [], removed: ['cuda-libs'], restart: true });
  });
});
