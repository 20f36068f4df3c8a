/**
 * Packs a folder into a reproducible `.tar.gz`: entries sorted, a fixed
 * mtime, uid/gid 0, modes normalized (0644, or 0755 when executable),
 * symlinks kept as links. Streams with back-pressure; returns the archive's
 * SHA-256 and size. Used by the demo now, and the base of `lander pack`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';

export interface PackResult {
  sha256: string;
  size: number;
  entries: number;
}

/** The mtime written into every header: SOURCE_DATE_EPOCH, else 2020-01-01. */
export function packMtime(): Date {
  const epoch = Number(process.env.SOURCE_DATE_EPOCH);
  return new Date((Number.isFinite(epoch) && epoch > 0 ? epoch : 1_577_836_800) * 1000);
}

async function* walk(root: string, rel = ''): AsyncGenerator<string> {
  const names = (await readdir(path.join(root, rel))).sort();
  for (const n of names) {
    const r = rel ? `${rel}/${n}` : n;
    yield r;
    if ((await lstat(path.join(root, r))).isDirectory()) yield* walk(root, r);
  }
}

export async function packDirectory(dir: string, outFile: string, opts: { level?: number } = {}): Promise<PackResult> {
  const pack = tar.pack();
  const hash = createHash('sha256');
  let size = 0;
  let entries = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  const written = pipeline(pack, createGzip({ level: opts.level ?? 6 }), tee, createWriteStream(outFile));
  const mtime = packMtime();
  const base = { mtime, uid: 0, gid: 0, uname: '', gname: '' };
  for await (const rel of walk(dir)) {
    const abs = path.join(dir, rel);
    const st = await lstat(abs);
    entries++;
    if (st.isSymbolicLink()) {
      await entry(pack, { ...base, name: rel, type: 'symlink', linkname: await readlink(abs), mode: 0o777 });
    } else if (st.isDirectory()) {
      await entry(pack, { ...base, name: `${rel}/`, type: 'directory', mode: 0o755 });
    } else if (st.isFile()) {
      const mode = st.mode & 0o111 ? 0o755 : 0o644;
      await new Promise<void>((resolve, reject) => {
        const sink = pack.entry({ ...base, name: rel, type: 'file', size: st.size, mode }, (err) => (err ? reject(err) : resolve()));
        pipeline(createReadStream(abs, { highWaterMark: 1 << 20 }), sink).catch(reject);
      });
    } else {
      throw new Error(`Cannot pack ${abs}: only files, folders and symlinks can be packed`);
    }
  }
  pack.finalize();
  await written;
  return { sha256: hash.digest('hex'), size, entries };
}

function entry(pack: tar.Pack, header: Partial<tar.Header> & { name: string }): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, (err) => (err ? reject(err) : resolve())));
}
