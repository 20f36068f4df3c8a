/**
 * Fallback static file server for the benchmarks when nginx is missing:
 * `node static-server.js ROOT PORT`. Streams files with 1 MiB reads and
 * back-pressure; no Range (the benchmarks never resume).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

const [root, port] = [path.resolve(process.argv[2] ?? '.'), Number(process.argv[3] ?? 0)];

http.createServer(async (req, res) => {
  const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  const file = path.join(root, rel);
  if (!file.startsWith(root)) return void res.writeHead(403).end();
  try {
    const st = await stat(file);
    if (!st.isFile()) return void res.writeHead(200).end();
    res.writeHead(200, { 'content-length': String(st.size), 'content-type': 'application/octet-stream' });
    createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
  } catch {
    res.writeHead(404).end();
  }
}).listen(port, '127.0.0.1');
