/**
 * A voicebox-shaped release for end-to-end tests: a server core folder and a
 * cuda-libs folder, each packed into a `.tar.gz` with a `.sha256` sidecar,
 * plus `cuda-libs.json`, served by the test HTTP server under
 * `/download/v<version>/`, and a lander config pointing at them.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { packDir, sha256Hex } from './archive.ts';
import type { TestServer } from './http-server.ts';

export const STAND_IN = fileURLToPath(new URL('../fixtures/stand-in-server.mjs', import.meta.url));

/**
 * A server core: the `voicebox-server-cuda` launcher (a shell script running
 * the stand-in server with node), many small Python-like files, and a
 * relative symlink. `marker` ends up in `_internal/VERSION`.
 */
export async function makeCoreTree(dir: string, version: string, opts: { smallFiles?: number; flags?: string } = {}): Promise<void> {
  await mkdir(path.join(dir, '_internal/voicebox'), { recursive: true });
  // `flags` bakes stand-in behaviour into this release (e.g. "--never-healthy"): a bad core.
  await writeFile(path.join(dir, 'voicebox-server-cuda'), `#!/bin/sh\nhere=$(dirname "$0")\nexec node "$here/_internal/server.mjs" "$@" ${opts.flags ?? ''}\n`);
  await chmod(path.join(dir, 'voicebox-server-cuda'), 0o755);
  await copyFile(STAND_IN, path.join(dir, '_internal/server.mjs'));
  await writeFile(path.join(dir, '_internal/VERSION'), `${version}\n`);
  for (let i = 0; i < (opts.smallFiles ?? 200); i++) {
    await writeFile(path.join(dir, `_internal/voicebox/mod${i}.py`), `# module ${i} of ${version}\nVALUE = ${i}\n`.repeat(1 + (i % 7)));
  }
  await writeFile(path.join(dir, '_internal/base_library.zip'), randomBytes(64 * 1024));
  await chmod(path.join(dir, '_internal/base_library.zip'), 0o444);
  await symlink('voicebox/mod0.py', path.join(dir, '_internal/first.py'));
}

/** cuda-libs: a few large incompressible libraries and a versioned .so link, as in CUDA trees. */
export async function makeCudaTree(dir: string, opts: { libBytes?: number; libs?: number } = {}): Promise<void> {
  const libDir = path.join(dir, '_internal/nvidia/cublas/lib');
  await mkdir(libDir, { recursive: true });
  const n = opts.libs ?? 3;
  for (let i = 0; i < n; i++) {
    await writeFile(path.join(libDir, `libcublas${i}.so.12`), randomBytes(opts.libBytes ?? 1024 * 1024));
    await chmod(path.join(libDir, `libcublas${i}.so.12`), 0o755);
  }
  await symlink('libcublas0.so.12', path.join(libDir, 'libcublas0.so'));
}

export interface PublishedAsset {
  name: string;
  urlPath: string;
  url: string;
  sha256: string;
  size: number;
  body: Buffer;
}

/** Packs `dir` and serves it (and its `.sha256` sidecar) at `/download/v<tag>/<name>`. */
export async function publish(server: TestServer, tag: string, name: string, dir: string): Promise<PublishedAsset> {
  const body = await packDir(dir, 1);
  const sha256 = sha256Hex(body);
  const urlPath = `/download/v${tag}/${name}`;
  server.serve(urlPath, body);
  server.serve(`${urlPath}.sha256`, `${sha256}  ${name}\n`);
  return { name, urlPath, url: server.url(urlPath), sha256, size: body.length, body };
}

/** Also serves voicebox's `cuda-libs.json` beside the cuda-libs archive. */
export function publishCudaLibsJson(server: TestServer, tag: string, version: string, asset: PublishedAsset): void {
  server.serve(`/download/v${tag}/cuda-libs.json`, JSON.stringify({ version, torch_compat: '2.7', archive: asset.name, sha256: asset.sha256 }));
}

/** A config in the README's shape, pointing at the test server. */
export function releaseConfig(server: TestServer, root: string, v: { server: string; cuda: string; appTag?: string }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    root,
    components: {
      server: { version: v.server, url: `${server.origin}/download/v{version}/voicebox-server-cuda.tar.gz`, sha256Url: '{url}.sha256', restart: true },
      'cuda-libs': { version: v.cuda, url: `${server.origin}/download/v${v.appTag ?? v.server}/cuda-libs-{version}.tar.gz`, sha256Url: '{url}.sha256', restart: true },
    },
    download: { retries: 0, backoffInitial: '10ms', connectTimeout: '2s', idleTimeout: '2s' },
    ...extra,
  };
}

export interface TreeNode {
  type: 'file' | 'symlink' | 'directory';
  /** Exec bits only: the store drops write bits on purpose. */
  exec?: boolean;
  sha256?: string;
  link?: string;
}

/** Every path under `dir` with its type, exec bit, content digest or link target. */
export async function snapshotTree(dir: string): Promise<Record<string, TreeNode>> {
  const out: Record<string, TreeNode> = {};
  const walk = async (rel: string) => {
    for (const n of (await readdir(path.join(dir, rel))).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const abs = path.join(dir, r);
      const st = await lstat(abs);
      if (st.isSymbolicLink()) out[r] = { type: 'symlink', link: await readlink(abs) };
      else if (st.isDirectory()) {
        out[r] = { type: 'directory' };
        await walk(r);
      } else out[r] = { type: 'file', exec: (st.mode & 0o111) !== 0, sha256: createHash('sha256').update(await readFile(abs)).digest('hex') };
    }
  };
  await walk('');
  return out;
}
