import { mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile, lstat, readdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.ts';
import { silentLogger } from '../../src/report/log.ts';
import { acquireLock } from '../../src/store/lock.ts';
import type { FileRecord } from '../../workers/protocol.ts';

let root: string;
const log = silentLogger();

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'lander-store-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Makes a staging folder as the worker would leave it, with its records. */
async function staged(store: Store, component: string, files: Record<string, string>, links: Record<string, string> = {}): Promise<{ dir: string; records: FileRecord[] }> {
  const dir = store.stagingPath(component);
  const records: FileRecord[] = [];
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, p)), { recursive: true });
    await writeFile(path.join(dir, p), content, { mode: 0o755 });
    records.push({ path: p, type: 'file', size: content.length, mode: 0o755 });
  }
  for (const [p, target] of Object.entries(links)) {
    await symlink(target, path.join(dir, p));
    records.push({ path: p, type: 'symlink', size: 0, mode: 0o777, linkname: target });
  }
  return { dir, records };
}

async function commit(store: Store, component: string, version: string, sha: string, files: Record<string, string>, links?: Record<string, string>) {
  const { dir, records } = await staged(store, component, files, links);
  return store.commitEntry({ component, version, sha256: sha.repeat(64).slice(0, 64), source: `http://x/${component}`, stagingDir: dir, files: records, archiveBytes: 10, extractedBytes: 10 });
}

describe('Store', () => {
  it('commits read-only entries and builds generations of hard links, swapping current atomically', async () => {
    const store = await Store.open(root, log);
    const srv = await commit(store, 'server', '1', 'a', { 'voicebox-server-cuda': '#!core1', '_internal/base.py': 'x' }, { 'lib.so': '_internal/base.py' });
    const libs = await commit(store, 'cuda-libs', 'cu128', 'b', { '_internal/libcublas.so.12': 'BLAS' });
    expect((await stat(path.join(root, srv.dir, 'voicebox-server-cuda'))).mode & 0o222).toBe(0);
    const { generation: g1 } = await store.createGeneration([srv, libs]);
    await store.swap(g1.id);
    expect(await readlink(path.join(root, 'current'))).toBe('generations/1');
    expect(await readFile(path.join(root, 'current/_internal/libcublas.so.12'), 'utf8')).toBe('BLAS');
    expect(await readlink(path.join(root, 'current/lib.so'))).toBe('_internal/base.py');

    const srv2 = await commit(store, 'server', '2', 'c', { 'voicebox-server-cuda': '#!core2', '_internal/base.py': 'y' });
    const { generation: g2 } = await store.createGeneration([srv2, libs]);
    await store.swap(g2.id);
    const a = await stat(path.join(root, 'generations/1/_internal/libcublas.so.12'));
    const b = await stat(path.join(root, 'generations/2/_internal/libcublas.so.12'));
    expect(b.ino).toBe(a.ino);
    expect(await readFile(path.join(root, 'current/voicebox-server-cuda'), 'utf8')).toBe('#!core2');
    const reopened = JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
    expect(reopened.current).toBe(2);
    await store.close();
  });

  it('refuses two components that provide the same file, or one under the other\'s symlink', async () => {
    const store = await Store.open(root, log);
    const a = await commit(store, 'server', '1', 'a', { 'x/f': '1' }, { lib: 'x' });
    const b = await commit(store, 'cuda-libs', '1', 'b', { 'x/f': '2' });
    await expect(store.createGeneration([a, b])).rejects.toMatchObject({ code: 'ERR_GENERATION_CONFLICT' });
    const c = await commit(store, 'other', '1', 'c', { 'lib/evil': '2' });
    await expect(store.createGeneration([a, c])).rejects.toMatchObject({ code: 'ERR_GENERATION_CONFLICT', data: { under: 'lib' } });
    expect((await readdir(path.join(root, 'generations'))).length).toBe(0);
    await store.close();
  });

  it('keeps the current and previous good generations in gc, and drops unused entries', async () => {
    const store = await Store.open(root, log);
    const ids: number[] = [];
    for (const v of ['1', '2', '3', '4']) {
      const e = await commit(store, 'server', v, v, { f: v });
      const { generation } = await store.createGeneration([e]);
      await store.swap(generation.id);
      await store.setStatus(generation.id, v === '4' ? 'new' : 'good');
      ids.push(generation.id);
    }
    const r = await store.gc(2);
    expect(store.state.generations.map((g) => g.id).sort()).toEqual([3, 4]);
    expect(r.generations.sort()).toEqual([1, 2]);
    await expect(lstat(path.join(root, 'generations/1'))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(lstat(path.join(root, 'store/server/1-11111111'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(store.previousGood()?.id).toBe(3);
    await store.close();
  });

  it('gc prunes downloads nobody uses or pins, and leaves those an install holds or a spec pins', async () => {
    const store = await Store.open(root, log);
    const sha = (c: string) => c.repeat(64);
    const dl = (n: string) => path.join(root, 'downloads', n);
    await writeFile(dl(`${sha('a')}.part`), Buffer.alloc(1000)); // a version no longer wanted
    await writeFile(dl(`${sha('a')}.part.json`), '{"url":"http://x/a"}');
    await writeFile(dl(`${sha('b')}.part`), Buffer.alloc(10)); // being downloaded right now
    await writeFile(dl(`${sha('c')}.part`), Buffer.alloc(10)); // pinned by a spec
    await mkdir(dl(`${sha('d')}.chunks.tree/lib`), { recursive: true }); // a chunked resume tree
    await writeFile(dl(`${sha('d')}.chunks.tree/lib/x.so`), Buffer.alloc(300));
    await writeFile(dl(`${sha('d')}.chunks.json`), '{}');
    await writeFile(dl('README.txt'), 'not lander\'s'); // not a download name: left alone
    const release = store.useDownload(sha('b'));
    const again = store.useDownload(sha('b'));
    const r = await store.gc(2, [], { keep: new Set([sha('c')]) });
    expect(r.downloads.sort()).toEqual([`${sha('a')}.part`, `${sha('a')}.part.json`, `${sha('d')}.chunks.json`, `${sha('d')}.chunks.tree`].sort());
    expect((await readdir(path.join(root, 'downloads'))).sort()).toEqual([`${sha('b')}.part`, `${sha('c')}.part`, 'README.txt'].sort());
    // Released by one of its two users only: still in use.
    release();
    expect((await store.pruneDownloads(new Set())).names).toEqual([`${sha('c')}.part`]);
    again();
    expect(await store.pruneDownloads(new Set())).toEqual({ names: [`${sha('b')}.part`], bytes: 10 });
    await store.close();
  });

  it('prune leaves a .part fetched from a URL still wanted (a version queued again), and removes one from any other URL', async () => {
    const store = await Store.open(root, log);
    const sha = (c: string) => c.repeat(64);
    const dl = (n: string) => path.join(root, 'downloads', n);
    await writeFile(dl(`${sha('e')}.part`), Buffer.alloc(100));
    await writeFile(dl(`${sha('e')}.part.json`), '{"url":"http://x/server-1.1.0.tar.gz"}');
    await writeFile(dl(`${sha('f')}.part`), Buffer.alloc(50));
    await writeFile(dl(`${sha('f')}.part.json`), '{"url":"http://x/server-1.0.0.tar.gz"}');
    await writeFile(dl(`${sha('9')}.part`), Buffer.alloc(7)); // no metadata: nothing says where it came from
    const r = await store.pruneDownloads(new Set(), new Set(['http://x/server-1.1.0.tar.gz', 'http://mirror/server-1.1.0.tar.gz']));
    expect(r.names.sort()).toEqual([`${sha('9')}.part`, `${sha('f')}.part`, `${sha('f')}.part.json`].sort());
    expect((await readdir(path.join(root, 'downloads'))).sort()).toEqual([`${sha('e')}.part`, `${sha('e')}.part.json`]);
    // Once no longer wanted from anywhere, it goes too.
    expect((await store.pruneDownloads(new Set(), new Set(['http://x/server-1.2.0.tar.gz']))).names.sort()).toEqual([`${sha('e')}.part`, `${sha('e')}.part.json`]);
    await store.close();
  });

  it('cleans staging and half-built generations left by a crash, and follows current over a stale state.json', async () => {
    const store = await Store.open(root, log);
    const e = await commit(store, 'server', '1', 'a', { f: '1' });
    const { generation } = await store.createGeneration([e]);
    await store.swap(generation.id);
    const e2 = await commit(store, 'server', '2', 'b', { f: '2' });
    const { generation: g2 } = await store.createGeneration([e2]);
    await store.close();
    // A crash after the link swap but before state.json was written:
    await rm(path.join(root, 'current'));
    await symlink(g2.dir, path.join(root, 'current'));
    await mkdir(path.join(root, 'staging/server-crashed/x'), { recursive: true });
    await mkdir(path.join(root, 'generations/3.tmp-abcd'), { recursive: true });
    const again = await Store.open(root, log);
    expect(again.state.current).toBe(g2.id);
    expect(await readdir(path.join(root, 'staging'))).toEqual([]);
    expect((await readdir(path.join(root, 'generations'))).sort()).toEqual(['1', '2']);
    await again.close();
  });

  it('removes generation and store folders that state.json does not record (a crash between rename and state write)', async () => {
    const store = await Store.open(root, log);
    const e1 = await commit(store, 'server', '1', 'a', { f: '1' });
    const { generation } = await store.createGeneration([e1]);
    await store.swap(generation.id);
    await store.close();
    // Renamed into place, then killed before state.json recorded them; plus a torn index temp file.
    await mkdir(path.join(root, 'generations/2/_internal'), { recursive: true });
    await mkdir(path.join(root, 'store/server/2-bbbbbbbb/_internal'), { recursive: true });
    await writeFile(path.join(root, 'store/server/2-bbbbbbbb.files.json'), '{}');
    await writeFile(path.join(root, 'store/server/.2-cccccccc.files.json.1234abcd.tmp'), '{');
    await writeFile(path.join(root, '.server.json.1234abcd.tmp'), '{');
    const again = await Store.open(root, log);
    expect(await readdir(path.join(root, 'generations'))).toEqual(['1']);
    expect((await readdir(path.join(root, 'store/server'))).sort()).toEqual([path.basename(e1.dir), `${path.basename(e1.dir)}.files.json`].sort());
    expect((await readdir(root)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(await readFile(path.join(root, 'current/f'), 'utf8')).toBe('1');
    await again.close();
  });

  it('lets one lander per root hold the lock, naming the holder, and takes over a dead holder\'s lock', async () => {
    const store = await Store.open(root, log);
    await expect(Store.open(root, log)).rejects.toMatchObject({ code: 'ERR_LOCKED', data: { pid: process.pid } });
    await store.close();
    // A lock left by a process that has exited.
    const child = spawn(process.execPath, ['-e', '0']);
    const deadPid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
    await writeFile(path.join(root, 'lander.lock'), JSON.stringify({ pid: deadPid }));
    const lock = await acquireLock(root);
    expect(JSON.parse(await readFile(path.join(root, 'lander.lock'), 'utf8')).pid).toBe(process.pid);
    await lock.release();
    await expect(lstat(path.join(root, 'lander.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
