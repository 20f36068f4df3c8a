import { describe, expect, it } from 'vitest';
import { ArchiveError, DigestMismatchError, DownloadError } from '../../src/base/errors.ts';
import { MirrorLedger, tryMirrors, type AttemptOutcome } from '../../src/fetch/mirrors.ts';

const retry = { retries: 1, backoffInitialMs: 1, backoffMaxMs: 2 };

describe('mirrors', () => {
  it('one URL: its own error, unchanged', () => {
    const l = new MirrorLedger();
    const e = new DownloadError('ERR_HTTP_STATUS', 'Cannot download u: the server answered HTTP 404 (after 1 attempt)');
    l.record('u', 1, e);
    expect(l.finalError('x 1', e)).toBe(e);
  });

  it('several URLs: every URL, how it failed and how often, keeping the last class and code', () => {
    const l = new MirrorLedger();
    l.record('a', 3, new DownloadError('ERR_HTTP_STATUS', 'Cannot download a: the server answered HTTP 502 (after 3 attempts)'));
    const bad = new ArchiveError('ERR_ARCHIVE_CORRUPT', 'Cannot extract: invalid gzip');
    l.record('b', 1, bad);
    const e = l.finalError('core 1', bad);
    expect(e).toBeInstanceOf(ArchiveError);
    expect((e as ArchiveError).code).toBe('ERR_ARCHIVE_CORRUPT');
    expect(e.message).toBe('Cannot download core 1 from any of its 2 URLs: a: the server answered HTTP 502 (after 3 attempts); b: Cannot extract: invalid gzip (after 1 attempt)');
    expect(l.finalError('core 1', new DigestMismatchError('m'))).toBeInstanceOf(DigestMismatchError);
  });

  it('retries while attempts bring bytes, moves on after the retries, logs the fall-through', async () => {
    let bytes = 0;
    const seen: string[] = [];
    const logs: string[] = [];
    const outcomes: Record<string, AttemptOutcome[]> = {
      a: [{ kind: 'next-url', error: new DownloadError('ERR_HTTP_STATUS', 'Cannot download a: the server answered HTTP 404', { data: { status: 404 } }) }],
      b: [{ kind: 'retry', error: new Error('broke') }, { kind: 'retry', error: new Error('broke') }, { kind: 'complete' }],
    };
    const r = await tryMirrors({
      subject: 'x', urls: ['a', 'b'], from: 0, retry, signal: new AbortController().signal, ledger: new MirrorLedger(),
      attempt: async (u) => { seen.push(u); const o = outcomes[u]!.shift()!; if (o.kind === 'retry') bytes++; return o; },
      progress: () => bytes, isComplete: () => false, log: (_l, ev, f) => logs.push(`${ev} ${String(f.status)}`),
    });
    expect(r).toEqual({ index: 1, attempts: 3 });
    expect(seen).toEqual(['a', 'b', 'b', 'b']);
    expect(logs).toEqual(['download.mirror-next 404', 'download.retry undefined', 'download.retry undefined']);
  });
});
