import { describe, expect, it } from 'vitest';
import { restartDelay, decideRestart, emptyHistory, type RestartHistory, type RestartPolicy } from '../../src/supervise/restart-policy.ts';

const policy: RestartPolicy = { initialDelay: 100, factor: 2, maxDelay: 1000, resetAfter: 5000, crashLoopExits: 4, window: 10_000 };

/** Feeds exits (at, uptime) through the policy and returns the decisions. */
function run(p: RestartPolicy, exits: Array<[number, number]>) {
  let h: RestartHistory = emptyHistory;
  return exits.map(([at, uptimeMs]) => {
    const d = decideRestart(p, h, { at, uptimeMs });
    h = d.history;
    return d;
  });
}

describe('restartDelay', () => {
  it('grows by the factor and stops at the cap', () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => restartDelay(policy, n))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
  it('never overflows for absurd attempt numbers', () => {
    expect(restartDelay(policy, 10_000)).toBe(1000);
  });
  it('is constant with factor 1', () => {
    expect(restartDelay({ ...policy, factor: 1 }, 7)).toBe(100);
  });
});

describe('decideRestart', () => {
  const wide = { ...policy, crashLoopExits: 100, window: 1000 };

  it('backs off exponentially for consecutive short runs, capped', () => {
    // Exits 2 s apart with a 1 s window never make a loop.
    const ds = run(wide, [[0, 10], [2000, 10], [4000, 10], [6000, 10], [8000, 10], [10_000, 10]]);
    expect(ds.map((d) => (d.action === 'restart' ? d.delayMs : -1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(ds.map((d) => (d.action === 'restart' ? d.attempt : -1))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('resets after a stable run', () => {
    const ds = run(wide, [[0, 10], [2000, 10], [4000, 10], [20_000, 5000], [22_000, 10]]);
    expect(ds.map((d) => (d.action === 'restart' ? d.delayMs : -1))).toEqual([100, 200, 400, 100, 200]);
  });

  it('an uptime just below resetAfter does not reset', () => {
    const ds = run(wide, [[0, 10], [10_000, 4999]]);
    expect(ds[1]).toMatchObject({ action: 'restart', delayMs: 200 });
  });

  it('fails on N exits inside the window', () => {
    const ds = run(policy, [[0, 10], [1000, 10], [2000, 10], [3000, 10]]);
    expect(ds.map((d) => d.action)).toEqual(['restart', 'restart', 'restart', 'fail']);
    expect(ds[3]).toMatchObject({ exitsInWindow: 4 });
  });

  it('exits that slid out of the window do not count', () => {
    const ds = run(policy, [[0, 10], [1000, 10], [2000, 10], [10_500, 10], [11_000, 10]]);
    // At 10 500 the exit at 0 is out (window 10 s): 3 inside. At 11 000 the one at 1000 is just out too.
    expect(ds.map((d) => d.action)).toEqual(['restart', 'restart', 'restart', 'restart', 'restart']);
  });

  it('a crash loop wins even after stable runs', () => {
    const ds = run({ ...policy, resetAfter: 1 }, [[0, 10], [100, 10], [200, 10], [300, 10]]);
    expect(ds.at(-1)!.action).toBe('fail');
  });

  it('keeps the history bounded', () => {
    const ds = run(wide, Array.from({ length: 1000 }, (_, i) => [i * 5000, 10] as [number, number]));
    expect(ds.at(-1)!.history.exits.length).toBeLessThanOrEqual(wide.crashLoopExits);
  });

  it('does not mutate the history it was given', () => {
    const h: RestartHistory = { consecutive: 2, exits: [1, 2] };
    decideRestart(policy, h, { at: 3, uptimeMs: 1 });
    expect(h).toEqual({ consecutive: 2, exits: [1, 2] });
  });

  it('a single allowed exit fails at once', () => {
    expect(run({ ...policy, crashLoopExits: 1 }, [[0, 10]])[0]!.action).toBe('fail');
  });
});
