import { describe, expect, it } from 'vitest';
import { assessHealth, stuckAfterMs, type HealthInput } from '../../src/report/daemon-health.ts';

const download = { retries: 1, connectTimeout: 1000, idleTimeout: 2000, backoffMax: 1000 };
const base: HealthInput = { now: 1_000_000, configLoadedAt: '2026-12-01T00:00:00Z', jobs: {}, download, server: 'healthy', installed: true, lastCheckAt: '2026-12-01T00:00:01Z' };

describe('assessHealth', () => {
  it('is ok with a healthy server, a valid config and no stuck job', () => {
    const h = assessHealth(base);
    expect(h.ok).toBe(true);
    expect(h.checks.lastCheck).toEqual({ ok: true, at: '2026-12-01T00:00:01Z' });
  });

  it('a job is stuck only past (retries + 2) x (connect + idle + backoffMax) without progress', () => {
    const bound = stuckAfterMs(download);
    expect(bound).toBe(3 * 4000);
    expect(assessHealth({ ...base, jobs: { server: base.now - bound } }).checks.jobs.ok).toBe(true);
    const h = assessHealth({ ...base, jobs: { server: base.now - bound - 1, 'cuda-libs': base.now } });
    expect(h.ok).toBe(false);
    expect(h.checks.jobs).toMatchObject({ ok: false, stuck: ['server'], stuckAfterMs: bound, detail: 'no progress for over 12 s: server' });
  });

  it('a rejected config edit makes it unhealthy and says the last good config is live', () => {
    const h = assessHealth({ ...base, lastInvalid: { at: '2026-12-01T00:00:02Z' } });
    expect(h.ok).toBe(false);
    expect(h.checks.config.detail).toBe('an edit was rejected at 2026-12-01T00:00:02Z; the last good config is live');
  });

  it('server states: failed, unhealthy and backoff are not ok; stopped is ok only before anything is installed', () => {
    for (const s of ['failed', 'unhealthy', 'backoff']) expect(assessHealth({ ...base, server: s }).checks.server).toMatchObject({ ok: false, detail: `the server is ${s}` });
    for (const s of ['none', 'starting', 'stopping']) expect(assessHealth({ ...base, server: s }).ok).toBe(true);
    expect(assessHealth({ ...base, server: 'stopped', installed: false }).ok).toBe(true);
    expect(assessHealth({ ...base, server: 'stopped', installed: true }).ok).toBe(false);
  });

  it('no check yet is reported, not failed', () => {
    const { lastCheckAt: _, ...noCheck } = base;
    expect(assessHealth(noCheck).checks.lastCheck).toEqual({ ok: true, detail: 'no check yet' });
  });
});
