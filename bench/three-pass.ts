/**
 * The three-pass baseline (voicebox's loop): download to a file, hash the
 * file, extract the file, with lander's runtime and libraries (http, crypto,
 * zlib, tar-stream). Its own module, loaded only by the `three-pass` variant
 * of `install-child.ts`, so lander's runs do not load its libraries.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Job } from './install-job.ts';

export async function threePass(job: Job): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    http.get(job.url, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}`));
      pipeline(res, createWriteStream(job.scratch)).then(resolve, reject);
    }).on('error', reject);
  });
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const c of createReadStream(job.scratch, { highWaterMark: 1 << 20 })) {
    hash.update(c as Buffer);
    bytes += (c as Buffer).length;
  }
  if (hash.digest('hex') !== job.sha256) throw new Error('digest mismatch');
  await mkdir(job.dir);
  const x = tar.extract();
  x.on('entry', (h, stream, next) => {
    const abs = path.join(job.dir, h.name);
    const done = (p: Promise<unknown>) => p.then(() => next(), next);
    if (h.type === 'directory') { stream.resume(); done(mkdir(abs, { recursive: true })); }
    else if (h.type === 'symlink') { stream.resume(); done(mkdir(path.dirname(abs), { recursive: true }).then(() => symlink(h.linkname!, abs))); }
    else done(mkdir(path.dirname(abs), { recursive: true }).then(() => pipeline(stream, createWriteStream(abs, { mode: h.mode }))));
  });
  await pipeline(createReadStream(job.scratch, { highWaterMark: 1 << 20 }), createGunzip({ chunkSize: 256 * 1024 }), x);
  return bytes;
}
