import { describe, expect, it } from 'vitest';
import { JobQueue } from '../../src/plan/queue.ts';

/** A job that runs until released (resolving with `value`) or aborted (rejecting with the signal's reason). */
function gate<T>(value: T) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let runs = 0;
  let signal: AbortSignal | undefined;
  const run = async (s: AbortSignal): Promise<T> => {
    runs++;
    signal = s;
    await Promise.race([released, new Promise((_, reject) => s.addEventListener('abort', () => reject(s.reason), { once: true }))]);
    return value;
  };
  return { run, release: () => release(), runs: () => runs, signal: () => signal };
}

describe('JobQueue', () => {
  it('joins identical requests: one run, one result for both callers', async () => {
    const q = new JobQueue({ concurrency: 2 });
    const g = gate('done');
    const a = q.submit({ component: 'server', key: '1.0|sha', run: g.run });
    const b = q.submit({ component: 'server', key: '1.0|sha', run: g.run });
    expect(b).toBe(a);
    await new Promise((r) => setTimeout(r, 10));
    g.release();
    await expect(Promise.all([a, b])).resolves.toEqual(['done', 'done']);
    expect(g.runs()).toBe(1);
  });

  it('a newer version aborts the older job, and runs only once the older one has let go', async () => {
    const q = new JobQueue({ concurrency: 2 });
    const old = gate('old');
    const order: string[] = [];
    const a = q.submit({ component: 'server', key: '1.0', run: (s) => old.run(s).finally(() => order.push('old settled')) });
    await new Promise((r) => setTimeout(r, 10));
    const b = q.submit({ component: 'server', key: '2.0', run: async () => { order.push('new started'); return 'new'; } });
    await expect(a).rejects.toMatchObject({ code: 'ERR_ABORTED', message: expect.stringMatching(/Superseded: server is now wanted at 2\.0/) });
    await expect(b).resolves.toBe('new');
    expect(old.signal()?.aborted).toBe(true);
    expect(order).toEqual(['old settled', 'new started']);
  });

  it('jobs of other components are independent; abortAll aborts every one; idle resolves after', async () => {
    const q = new JobQueue({ concurrency: 2 });
    const s = gate('s');
    const l = gate('l');
    const a = q.submit({ component: 'server', key: '1', run: s.run });
    const b = q.submit({ component: 'cuda-libs', key: '1', run: l.run });
    await new Promise((r) => setTimeout(r, 10));
    expect(q.size).toBe(2);
    s.release();
    await expect(a).resolves.toBe('s');
    q.abortAll('shutting down');
    await expect(b).rejects.toMatchObject({ code: 'ERR_ABORTED', message: 'Cannot finish cuda-libs: shutting down' });
    await q.idle();
    expect(q.size).toBe(0);
  });

  it('a request for an aborted job starts a fresh one', async () => {
    const q = new JobQueue();
    const first = gate('first');
    const a = q.submit({ component: 'server', key: '1', run: first.run });
    await new Promise((r) => setTimeout(r, 10));
    q.abort('server', 'operator asked');
    await expect(a).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    const again = gate('again');
    const b = q.submit({ component: 'server', key: '1', run: again.run });
    again.release();
    await expect(b).resolves.toBe('again');
    expect(again.runs()).toBe(1);
  });

  it('an aborted job that is still finishing (a commit, a log line) keeps idle() waiting until it has', async () => {
    const q = new JobQueue({ concurrency: 2 });
    let finished = false;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const job = q.submit({ component: 'core', key: '1', run: async () => { await released; finished = true; return 'ok'; } });
    job.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 10));
    q.abortAll();
    let idle = false;
    void q.idle().then(() => { idle = true; });
    await new Promise((r) => setTimeout(r, 30));
    expect(idle).toBe(false); // before the fix, p-queue counted the aborted task done here
    release();
    await q.idle();
    expect(finished).toBe(true);
    await expect(job).resolves.toBe('ok'); // it ignored the abort and finished: its result stands
  });
});
