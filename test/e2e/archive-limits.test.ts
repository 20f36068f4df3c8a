/**
 * Every limit on an archive, enforced while it streams, each tested just
 * under (installs) and just over (refused with ERR_ARCHIVE_LIMIT or
 * ERR_SIZE_LIMIT naming the limit, the value found and the maximum), through
 * the real install worker and a real HTTP server on loopback. The declared
 * size is also tested against a server that streams forever.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createGzip, gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runInstallWorker } from '../../src/install/worker-client.ts';
import { hasCode, type LanderError } from '../../src/base/errors.ts';
import type { ExtractLimits, InstallRequest } from '../../workers/protocol.ts';
import { buildTar, buildTarGz, paddedBody, paxRecord, rawHeader, sha256Hex, type ArchiveEntry } from '../helpers/archive.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { workerRequest } from '../helpers/install-request.ts';

let srv: TestServer;
let root: string;
/** Every root made by a test: underAndOver installs twice, and each install has its own. */
const roots: string[] = [];
let n = 0;
beforeAll(async () => { srv = await startTestServer(); });
afterAll(async () => { await srv.close(); });
afterEach(async () => { for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true }); });

const LIMITS: ExtractLimits = { maxEntries: 10_000, maxExpansionRatio: 1000, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 1024, maxExtractedBytes: 1 << 30 };

async function prepare(url: string, sha: string, limits: Partial<ExtractLimits>, over: Partial<InstallRequest>): Promise<InstallRequest> {
  root = await mkdtemp(path.join(tmpdir(), 'lander-lim-'));
  roots.push(root);
  await mkdir(path.join(root, 'downloads'));
  return workerRequest(
    { root, url, sha256: sha, jobId: `lim${++n}`, download: { idleTimeoutMs: 2000, retries: 0, backoffMaxMs: 20 }, limits: { ...LIMITS, ...limits } },
    { version: '1', progressIntervalMs: undefined, ...over },
  );
}

async function install(body: Buffer, limits: Partial<ExtractLimits> = {}, over: Partial<InstallRequest> = {}) {
  const p = `/lim${n + 1}.tar.gz`;
  srv.serve(p, body);
  const req = await prepare(srv.url(p), sha256Hex(body), limits, over);
  return { req, result: await runInstallWorker(req).then((done) => ({ done }), (err: LanderError) => ({ err })) };
}

/** Installs under `ok`, is refused under `tight`, and the refusal names the limit, value and maximum. */
async function underAndOver(body: Buffer, ok: Partial<ExtractLimits>, tight: Partial<ExtractLimits>, want: { limit: string; value?: number; max: number; code?: string }) {
  const good = await install(body, ok);
  expect('err' in good.result ? good.result.err : undefined).toBeUndefined();
  const bad = await install(body, tight);
  const err = 'err' in bad.result ? bad.result.err : undefined;
  expect(err?.code, err?.message).toBe(want.code ?? 'ERR_ARCHIVE_LIMIT');
  expect(err!.data).toMatchObject({ limit: want.limit, max: want.max, ...(want.value !== undefined ? { value: want.value } : {}) });
  expect(err!.message).toContain(`limits.${want.limit} (${want.max})`);
  expect(await readdir(path.join(root, 'staging'))).toEqual([]);
  return err!;
}

describe('archive limits, just under and just over', () => {
  it('limits.maxEntries: 20 entries install under 20, are refused under 19', async () => {
    const body = await buildTarGz(Array.from({ length: 20 }, (_, i): ArchiveEntry => ({ name: `f${i}`, content: 'x' })));
    const err = await underAndOver(body, { maxEntries: 20 }, { maxEntries: 19 }, { limit: 'maxEntries', value: 20, max: 19 });
    expect(err.data.entry).toBe('f19');
  });

  it('limits.maxPathLength: a 100-byte name installs under 100, is refused under 99', async () => {
    const name = `${'a'.repeat(50)}/${'b'.repeat(49)}`;
    expect(Buffer.byteLength(name)).toBe(100);
    await underAndOver(await buildTarGz([{ name, content: 'x' }]), { maxPathLength: 100 }, { maxPathLength: 99 }, { limit: 'maxPathLength', value: 100, max: 99 });
  });

  it('limits.maxPathDepth: 8 parts install under 8, are refused under 7', async () => {
    await underAndOver(await buildTarGz([{ name: 'a/b/c/d/e/f/g/h', content: 'x' }]), { maxPathDepth: 8 }, { maxPathDepth: 7 }, { limit: 'maxPathDepth', value: 8, max: 7 });
  });

  it('limits.maxMetaEntrySize: pax headers of exactly the limit install, one byte more is refused', async () => {
    // The limit counts what precedes an entry: the pax header block plus its body padded to 512.
    const max = 64 * 1024;
    const paxOf = (bodyBytes: number) => {
      // A record's length prefix counts its own digits: search the value length that lands exactly.
      for (let v = bodyBytes - 20; v < bodyBytes; v++) {
        const rec = paxRecord('comment', 'v'.repeat(v));
        if (rec.length === bodyBytes) return Buffer.from(rec);
      }
      throw new Error(`no pax record of ${bodyBytes} bytes`);
    };
    const archive = (bodyBytes: number) => {
      const p = paxOf(bodyBytes);
      return buildTarGz([{ type: 'raw', data: rawHeader('PaxHeader/f', 'x', p.length) }, { type: 'raw', data: paddedBody(p) }, { name: 'f', content: 'x' }]);
    };
    const under = await install(await archive(max - 512), { maxMetaEntrySize: max });
    expect('done' in under.result).toBe(true);
    const over = await install(await archive(max - 511), { maxMetaEntrySize: max });
    const err = 'err' in over.result ? over.result.err : undefined;
    expect(err?.code).toBe('ERR_ARCHIVE_LIMIT');
    expect(err!.data).toMatchObject({ limit: 'maxMetaEntrySize', value: max + 512, max, entry: 'PaxHeader/f' });
  });

  it('limits.maxExtractedBytes: 1,000 bytes install under 1000, are refused under 999', async () => {
    await underAndOver(await buildTarGz([{ name: 'f', content: Buffer.alloc(1000, 1) }]), { maxExtractedBytes: 1000 }, { maxExtractedBytes: 999 }, { limit: 'maxExtractedBytes', value: 1000, max: 999 });
  });

  it('limits.maxExpansionRatio: a zero-filled archive installs at its own ratio, is refused just below it', async () => {
    // Under 1 MiB of gzip, the ratio is taken against 1 MiB (a grace for small archives), so it is exactly tar bytes / 1 MiB.
    const tar = await buildTar([{ name: 'zeros', content: Buffer.alloc(8 << 20) }]);
    const body = gzipSync(tar, { level: 9 });
    expect(body.length).toBeLessThan(1 << 20);
    const ratio = tar.length / (1 << 20);
    const tight = Math.floor(ratio * 1000) / 1000 - 0.001;
    const err = await underAndOver(body, { maxExpansionRatio: ratio }, { maxExpansionRatio: tight }, { limit: 'maxExpansionRatio', max: tight });
    expect(err.data.value as number).toBeGreaterThan(tight);
    expect(err.data.entry).toBe('zeros');
  });

  it('the component\'s "size": an archive of exactly that size installs, one byte less is refused', async () => {
    const body = await buildTarGz([{ name: 'blob', content: randomBytes(50_000) }], 1);
    const good = await install(body, {}, { maxBytes: body.length });
    expect('done' in good.result).toBe(true);
    const bad = await install(body, {}, { maxBytes: body.length - 1 });
    const err = 'err' in bad.result ? bad.result.err : undefined;
    expect(err?.code).toBe('ERR_SIZE_LIMIT');
    expect(err!.message).toContain(String(body.length - 1));
    expect(await readdir(path.join(root, 'downloads'))).toEqual([]);
  });
});

describe('the declared size against an endless body', () => {
  it('cuts a body that never ends (no Content-Length) at the component\'s "size" and closes the connection', async () => {
    let sent = 0;
    let closed!: () => void;
    const clientGone = new Promise<void>((r) => (closed = r));
    // A valid .tar.gz that never ends: one file declared at 8 GiB, random (incompressible) body, gzipped on the fly.
    const endless = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // chunked: no length to refuse up front
      const gz = createGzip({ level: 1 });
      gz.on('data', (c: Buffer) => { sent += c.length; if (!res.write(c)) gz.pause(); });
      res.on('drain', () => gz.resume());
      res.on('close', () => { gz.destroy(); closed(); });
      gz.write(rawHeader('endless', '0', 0o77777777777));
      const pump = () => {
        if (res.destroyed) return;
        if (gz.write(randomBytes(64 * 1024))) setImmediate(pump);
        else gz.once('drain', pump);
      };
      pump();
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(endless.address() as AddressInfo).port}/forever.tar.gz`;
      const cap = 2 << 20;
      const req = await prepare(url, 'e'.repeat(64), { maxExtractedBytes: 16 * 1024 ** 3 }, { maxBytes: cap });
      const r2 = await runInstallWorker(req).catch((e: LanderError) => e);
      expect(hasCode(r2, 'ERR_SIZE_LIMIT')).toBe(true);
      const err = r2 as LanderError;
      expect(err.message).toMatch(/longer than the component's "size" \(2097152 bytes\)/);
      expect(err.data).toMatchObject({ limit: 'size', max: cap });
      await clientGone; // lander hung up; the server did not have to stop on its own
      expect(sent).toBeLessThan(cap + (8 << 20)); // what was in flight in socket buffers, not more
      expect(await readdir(path.join(root, 'staging'))).toEqual([]);
      expect(await readdir(path.join(root, 'downloads'))).toEqual([]);
    } finally {
      endless.closeAllConnections();
      await new Promise<void>((r) => endless.close(() => r()));
    }
  });
});
