/**
 * The demo's release server: static files from a folder on 127.0.0.1 with
 * Range and ETag support, optionally throttled so progress is visible.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AddressInfo } from 'node:net';

export interface StaticServer {
  origin: string;
  close(): Promise<void>;
}

function throttle(bytesPerSecond: number): Transform {
  const t0 = performance.now();
  let sent = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      sent += chunk.length;
      const due = (sent / bytesPerSecond) * 1000 - (performance.now() - t0);
      setTimeout(() => cb(null, chunk), Math.max(0, due));
    },
  });
}

export async function startStaticServer(dir: string, opts: { bytesPerSecond?: number } = {}): Promise<StaticServer> {
  const server = http.createServer((req, res) => {
    void (async () => {
      const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      const file = path.join(dir, path.normalize(rel));
      if (path.relative(dir, file).startsWith('..')) return res.writeHead(403).end();
      const st = await stat(file).catch(() => undefined);
      if (!st?.isFile()) return res.writeHead(404).end();
      const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      if (req.headers['if-none-match'] === etag) return res.writeHead(304, { etag }).end();
      let start = 0;
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      const ifRange = req.headers['if-range'];
      if (m && (!ifRange || ifRange === etag) && Number(m[1]) < st.size) start = Number(m[1]);
      const headers: http.OutgoingHttpHeaders = { etag, 'accept-ranges': 'bytes', 'content-length': st.size - start };
      if (start > 0) headers['content-range'] = `bytes ${start}-${st.size - 1}/${st.size}`;
      res.writeHead(start > 0 ? 206 : 200, headers);
      const body = createReadStream(file, { start, highWaterMark: 256 * 1024 });
      await (opts.bytesPerSecond ? pipeline(body, throttle(opts.bytesPerSecond), res) : pipeline(body, res));
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
