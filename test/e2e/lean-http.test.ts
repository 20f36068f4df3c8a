/**
 * lander's own HTTP/1.1 client for direct requests (`src/fetch/http1/`),
 * through `httpGet`, against real servers on loopback: the misbehaving test
 * server, a node:http server sending a chunked body, a raw socket that
 * answers something other than HTTP, and a real https origin (a throwaway
 * CA, trusted by a `lander install` child only).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from '../../src/fetch/http-get.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { buildTarGz, sha256Hex } from '../helpers/archive.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { makeTestCa } from '../helpers/test-ca.ts';

let srv: TestServer;
let work: string;
const body = randomBytes(4 << 20);

beforeAll(async () => {
  srv = await startTestServer();
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-lean-http-'));
});
afterAll(async () => {
  await srv.close();
  await rm(work, { recursive: true, force: true });
});

/** Reads a body to its end or its error: the bytes that came, and the error if any. */
async function drain(b: Readable): Promise<{ bytes: Buffer; error?: NodeJS.ErrnoException }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of b) parts.push(c as Buffer);
    return { bytes: Buffer.concat(parts) };
  } catch (error) {
    return { bytes: Buffer.concat(parts), error: error as NodeJS.ErrnoException };
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A one-shot server on loopback that runs `answer` on each connection. */
async function rawServer(answer: (s: net.Socket) => void): Promise<{ url: string; close(): Promise<void> }> {
  // It reads what it is sent (the request), so it sees the client's close.
  const s = net.createServer((sock) => { sock.resume(); answer(sock); });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(s.address() as net.AddressInfo).port}/x`, close: () => new Promise<void>((r) => s.close(() => r())) };
}

describe('direct requests over lander\'s HTTP/1.1 client', () => {
  it('delivers the body exactly, and a reader that stops stops the server: the socket pauses', async () => {
    const big = randomBytes(64 << 20);
    srv.serve('/big', big);
    const res = await httpGet(srv.url('/big'));
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(big.length));
    const first = await new Promise<Buffer>((r) => res.body.once('data', (c: Buffer) => { res.body.pause(); r(c); }));
    await new Promise((r) => setTimeout(r, 400));
    // What the server could send while nobody read: socket buffers and the body's 256 KiB, not 64 MiB.
    expect(srv.stats('/big').bytesSent).toBeLessThan(24 << 20);
    const rest = await drain(res.body.resume());
    expect(rest.error).toBeUndefined();
    expect(sha(Buffer.concat([first, rest.bytes]))).toBe(sha(big));
  });

  it('a connection cut mid-body: every byte before the cut, then ECONNRESET', async () => {
    srv.serve('/cut', body);
    for (const fault of [{ cutAfter: 1_000_000 }, { endAfter: 1_000_000 }]) {
      srv.misbehave('/cut', fault);
      const res = await httpGet(srv.url('/cut'));
      const r = await drain(res.body);
      expect(r.bytes.equals(body.subarray(0, 1_000_000)), JSON.stringify(fault)).toBe(true);
      expect(r.error?.code).toBe('ECONNRESET');
      if ('endAfter' in fault) expect(r.error?.message).toBe(`the server closed the connection with ${body.length - 1_000_000} bytes of the body still to come`);
    }
  });

  it('a stalled body ends with ERR_IDLE_TIMEOUT; an abort ends it with its reason', async () => {
    srv.serve('/stall', body);
    srv.misbehave('/stall', { stallAfter: 100_000 });
    const stalled = await drain((await httpGet(srv.url('/stall'), { idleTimeoutMs: 200 })).body);
    expect(stalled.error?.code).toBe('ERR_IDLE_TIMEOUT');
    expect(stalled.error?.message).toMatch(/^no data from 127\.0\.0\.1:\d+ for 200 ms$/);
    srv.misbehave('/stall', { stallAfter: 100_000 });
    const ac = new AbortController();
    const res = await httpGet(srv.url('/stall'), { signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stopped by the test')), 50);
    expect((await drain(res.body)).error?.message).toBe('stopped by the test');
  });

  it('sends Range and If-Range and reads the 206 with its Content-Range', async () => {
    srv.serve('/range', body);
    const etag = (await httpGet(srv.url('/range')).then(async (r) => { r.body.destroy(); return r.headers.etag; }))!;
    const res = await httpGet(srv.url('/range'), { offset: 1000, end: 3000, ifRange: etag });
    expect(res.status).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes 1000-2999/${body.length}`);
    expect((await drain(res.body)).bytes.equals(body.subarray(1000, 3000))).toBe(true);
    expect(srv.stats('/range').ifRanges.at(-1)).toBe(etag);
  });

  it('decodes a chunked body from node:http (no Content-Length)', async () => {
    const s = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(body.subarray(0, 12345));
      setTimeout(() => res.end(body.subarray(12345)), 20);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      const res = await httpGet(`http://127.0.0.1:${(s.address() as net.AddressInfo).port}/`);
      expect(res.headers['transfer-encoding']).toBe('chunked');
      const r = await drain(res.body);
      expect(r.error).toBeUndefined();
      expect(sha(r.bytes)).toBe(sha(body));
    } finally {
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  it('an answer that is not HTTP is refused naming what came; a header that would split the request is refused', async () => {
    const ssh = await rawServer((sock) => sock.end('SSH-2.0-OpenSSH_9.2p1 Debian\r\n\r\n'));
    try {
      await expect(httpGet(ssh.url)).rejects.toMatchObject({ code: 'ERR_HTTP_PARSE', message: expect.stringContaining('"SSH-2.0-OpenSSH_9.2p1 Debian"') });
    } finally {
      await ssh.close();
    }
    await expect(httpGet(srv.url('/range'), { headers: { 'x-token': 'a\r\nx-evil: 1' } })).rejects.toMatchObject({ code: 'ERR_INVALID_CHAR' });
  });
});

describe('lander install from a direct https origin (TLS by lander\'s own client)', () => {
  it('installs the archive and its sidecar over TLS, trusting the CA it was given', async () => {
    const w = (f: string) => path.join(work, f);
    const ca = await makeTestCa(work, 'lander lean CA');
    const lib = randomBytes(3 << 20);
    const archive = await buildTarGz([{ name: 'bin/server', content: '#!/bin/sh\n', mode: 0o755 }, { name: 'lib/blob', content: lib }], 1);
    const seen: { url: string; tls: boolean; alpn: string | false }[] = [];
    const origin = https.createServer({ key: await readFile(ca.keyPath), cert: await readFile(ca.certPath), ALPNProtocols: ['h2', 'http/1.1'] }, (req, res) => {
      const sock = req.socket as import('node:tls').TLSSocket;
      seen.push({ url: req.url ?? '', tls: sock.encrypted === true, alpn: sock.alpnProtocol });
      const b = req.url === '/core-1.tar.gz' ? archive : req.url === '/core-1.tar.gz.sha256' ? Buffer.from(`${sha256Hex(archive)}  core-1.tar.gz\n`) : undefined;
      if (!b) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-length': String(b.length) }).end(b);
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
    try {
      const root = w('root');
      await mkdir(root);
      await writeFile(w('lander.json'), JSON.stringify({
        root,
        components: { core: { version: '1', url: `https://127.0.0.1:${(origin.address() as net.AddressInfo).port}/core-{version}.tar.gz`, sha256Url: '{url}.sha256' } },
        download: { retries: 0, connectTimeout: '5s', idleTimeout: '5s' },
      }));
      const none = { HTTP_PROXY: '', HTTPS_PROXY: '', http_proxy: '', https_proxy: '' };
      const r = await runLander(['install', '--config', w('lander.json')], { ...none, NODE_EXTRA_CA_CERTS: ca.caPath, DENO_CERT: ca.caPath });
      expect(r.code, r.stderr).toBe(0);
      expect((await readFile(path.join(root, 'current/lib/blob'))).equals(lib)).toBe(true);
      expect(seen.map((s) => s.url).sort()).toEqual(['/core-1.tar.gz', '/core-1.tar.gz.sha256']);
      // TLS, and HTTP/1.1 asked for by ALPN (the server offered h2 first).
      expect(seen.every((s) => s.tls && s.alpn === 'http/1.1')).toBe(true);
    } finally {
      await new Promise<void>((r) => origin.close(() => r()));
    }
  });
});
