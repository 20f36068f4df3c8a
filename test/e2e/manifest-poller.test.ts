/**
 * The manifest poller against the real loopback test server: conditional
 * GETs, changes, broken manifests, failures and the schedule.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ManifestConfig } from '../../src/config/schema.ts';
import type { LanderError } from '../../src/base/errors.ts';
import { createLogger } from '../../src/report/log.ts';
import type { ParsedManifest } from '../../src/config/manifest.ts';
import { ManifestPoller, type ManifestFetchInfo, type ManifestPollerOptions } from '../../src/config/manifest-poller.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';

type Rec = Record<string, any>;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const POLL = { timeout: 10_000, interval: 20 };

const manifestText = (version: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ schema: 1, ...extra, components: { server: { version, url: `server-${version}.tar.gz`, sha256: A } } });

interface Harness {
  srv: TestServer;
  poller: ManifestPoller;
  manifests: { m: ParsedManifest; info: ManifestFetchInfo }[];
  errors: LanderError[];
  records: Rec[];
}

async function setup(config: Partial<ManifestConfig> & { path?: string } = {}, extra: Partial<ManifestPollerOptions> = {}): Promise<Harness> {
  const { path: urlPath = '/rel/manifest.json', ...manifestConfig } = config;
  const srv = await startTestServer();
  cleanups.push(() => srv.close());
  const records: Rec[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void records.push(JSON.parse(s)) } });
  const manifests: Harness['manifests'] = [];
  const errors: LanderError[] = [];
  const poller = new ManifestPoller({
    config: { url: srv.url(urlPath), format: 'lander', component: 'cuda-libs', interval: 3_600_000, jitter: 0.1, ...manifestConfig },
    log,
    download: { connectTimeout: 5_000, idleTimeout: 5_000, backoffInitial: 1_000, backoffMax: 30_000 },
    onManifest: (m, info) => manifests.push({ m, info }),
    onError: (e) => errors.push(e),
    ...extra,
  });
  cleanups.push(() => poller.stop());
  return { srv, poller, manifests, errors, records };
}

describe('ManifestPoller', () => {
  it('gets the manifest, then 304 with no body bytes, then picks up a change', async () => {
    const h = await setup();
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1'));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.manifests).toHaveLength(1);
    expect(h.manifests[0]!.m.components.server).toEqual({ version: '0.3.1', urls: [h.srv.url('/rel/server-0.3.1.tar.gz')], sha256: A });
    const etag = h.manifests[0]!.info.etag;
    expect(etag).toMatch(/^".+"$/);
    expect(h.records.find((r) => r.event === 'manifest.changed')).toMatchObject({ level: 'info', url: h.srv.url('/rel/manifest.json'), etag });
    const st = h.srv.stats('/rel/manifest.json');
    const bytesAfterFirst = st.bytesSent;
    expect(bytesAfterFirst).toBeGreaterThan(0);

    expect(await h.poller.pollNow()).toBe('not-modified');
    expect(st.ifNoneMatches).toEqual([undefined, etag]);
    expect(st.notModified).toBe(1);
    expect(st.bytesSent).toBe(bytesAfterFirst);
    expect(h.manifests).toHaveLength(1);
    expect(h.records.find((r) => r.event === 'manifest.not-modified')).toMatchObject({ level: 'debug' });

    h.srv.serve('/rel/manifest.json', manifestText('0.3.2'));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.manifests.map((x) => x.m.components.server!.version)).toEqual(['0.3.1', '0.3.2']);
    expect(h.poller.manifest?.components.server!.version).toBe('0.3.2');
    expect(h.poller.status()).toMatchObject({ lastStatus: 200, lastCheckAt: expect.any(String) });
    expect(h.poller.status().error).toBeUndefined();
  });

  it('keeps the last good manifest when a broken one is served, and reports it every time until fixed', async () => {
    const h = await setup();
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1'));
    expect(await h.poller.pollNow()).toBe('changed');
    h.srv.serve('/rel/manifest.json', JSON.stringify({ schema: 1, components: { server: { version: '0.3.2', url: 'x.tar.gz', sha256: 'zz' } } }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.map((e) => e.code)).toEqual(['ERR_MANIFEST', 'ERR_MANIFEST']);
    expect(h.errors[0]!.data.issues).toEqual([{ path: 'components.server.sha256', message: expect.any(String) }]);
    expect(h.poller.manifest?.components.server!.version).toBe('0.3.1');
    expect(h.poller.status().error).toMatch(/components\.server\.sha256/);
    expect(h.records.filter((r) => r.event === 'manifest.error')).toHaveLength(2);
    // The broken body's ETag was not remembered: the last good one is still sent.
    const st = h.srv.stats('/rel/manifest.json');
    expect(st.ifNoneMatches[1]).toBe(st.ifNoneMatches[2]);

    h.srv.serve('/rel/manifest.json', manifestText('0.3.3'));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.manifests.map((x) => x.m.components.server!.version)).toEqual(['0.3.1', '0.3.3']);
    expect(h.poller.status().error).toBeUndefined();
  });

  it('reports HTTP errors and an oversized body, keeping the last good manifest', async () => {
    const h = await setup({}, { maxBytes: 4096 });
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1'));
    expect(await h.poller.pollNow()).toBe('changed');
    h.srv.misbehave('/rel/manifest.json', { status: 503 });
    expect(await h.poller.pollNow()).toBe('error');
    h.srv.serve('/rel/manifest.json', manifestText('0.3.2', { padding: 'x'.repeat(10_000) }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.map((e) => e.code)).toEqual(['ERR_HTTP_STATUS', 'ERR_SIZE_LIMIT']);
    expect(h.poller.manifest?.components.server!.version).toBe('0.3.1');
  });

  it('refuses a manifest whose sequence goes backwards', async () => {
    const h = await setup();
    h.srv.serve('/rel/manifest.json', manifestText('0.3.2', { sequence: 5 }));
    expect(await h.poller.pollNow()).toBe('changed');
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1', { sequence: 4 }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors[0]!.data.issues).toEqual([{ path: 'sequence', message: expect.stringMatching(/Expected 5 or more, got 4/) }]);
    h.srv.serve('/rel/manifest.json', manifestText('0.3.3', { sequence: 6 }));
    expect(await h.poller.pollNow()).toBe('changed');
  });

  it('reads voicebox cuda-libs.json with the archive relative to it', async () => {
    const h = await setup({ path: '/download/v0.3.1/cuda-libs.json', format: 'cuda-libs', component: 'cuda-libs' });
    h.srv.serve('/download/v0.3.1/cuda-libs.json', JSON.stringify({ version: 'cu128-v1', torch_compat: '2.7', archive: 'cuda-libs-cu128-v1.tar.gz', sha256: B }));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.manifests[0]!.m.components).toEqual({ 'cuda-libs': { version: 'cu128-v1', urls: [h.srv.url('/download/v0.3.1/cuda-libs-cu128-v1.tar.gz')], sha256: B } });
    expect(await h.poller.pollNow()).toBe('not-modified');
  });

  it('joins a poll already in flight', async () => {
    const h = await setup();
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1'));
    const [a, b] = await Promise.all([h.poller.pollNow(), h.poller.pollNow()]);
    expect([a, b]).toEqual(['changed', 'changed']);
    expect(h.srv.stats('/rel/manifest.json').requests).toBe(1);
    expect(h.manifests).toHaveLength(1);
  });

  it('polls on its own schedule once started, and stops', async () => {
    const h = await setup({ interval: 50, jitter: 0.5 }, { minDelayMs: 10 });
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1'));
    h.poller.start();
    await expect.poll(() => h.manifests.length, POLL).toBe(1);
    await expect.poll(() => h.srv.stats('/rel/manifest.json').notModified, POLL).toBeGreaterThanOrEqual(2);
    h.srv.serve('/rel/manifest.json', manifestText('0.3.2'));
    await expect.poll(() => h.manifests.length, POLL).toBe(2);
    h.poller.stop();
    const n = h.srv.stats('/rel/manifest.json').requests;
    await new Promise((r) => setTimeout(r, 300)); // a negative: no poll may come after stop()
    expect(h.srv.stats('/rel/manifest.json').requests).toBe(n);
  });

  it('aborts a poll in flight on stop without reporting an error', async () => {
    const h = await setup();
    h.srv.serve('/rel/manifest.json', manifestText('0.3.1'));
    h.srv.misbehave('/rel/manifest.json', { stallAfter: 5 });
    const p = h.poller.pollNow();
    await expect.poll(() => h.srv.stats('/rel/manifest.json').bytesSent, POLL).toBe(5);
    h.poller.stop();
    expect(await p).toBe('error');
    expect(h.errors).toEqual([]);
  });

  it('treats an unchanged file: manifest as not modified', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lander-mp-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'manifest.json');
    fs.writeFileSync(file, manifestText('0.3.1'));
    const got: ParsedManifest[] = [];
    const p = new ManifestPoller({
      config: { url: pathToFileURL(file).href, format: 'lander', component: 'cuda-libs', interval: 60_000, jitter: 0 },
      log: createLogger({ level: 'silent' }),
      onManifest: (m) => got.push(m),
      onError: (e) => { throw e; },
    });
    expect(await p.pollNow()).toBe('changed');
    expect(got[0]!.components.server!.urls).toEqual([pathToFileURL(path.join(dir, 'server-0.3.1.tar.gz')).href]);
    expect(await p.pollNow()).toBe('not-modified');
    fs.writeFileSync(file, manifestText('0.3.2'));
    expect(await p.pollNow()).toBe('changed');
    expect(got).toHaveLength(2);
  });
});
