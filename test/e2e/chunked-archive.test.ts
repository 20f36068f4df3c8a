/**
 * Chunked archives from `lander pack` are ordinary `.tar.gz` files: GNU tar
 * (as an unprivileged user), Python's tarfile with filter="data" and
 * voicebox's download-and-extract logic (restated below in Python, as its
 * backend does it: fetch the sidecar, stream the archive to a temp file
 * while hashing, compare, then tarfile "r:gz" + extractall(filter="data"))
 * all extract the source tree; the archive is within 3% of `gzip -6` of the
 * same tar; every member inflates on its own to the bytes its index entry hashes.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeIndex } from '../../src/install/chunked/index-format.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';
import { runLander } from '../helpers/lander-cli.ts';
import { snapshotTree } from '../helpers/release.ts';
import { makeSourceTree } from '../helpers/source-tree.ts';

const ASSET = 'core-1.0.tar.gz';
let work: string;
let src: string;
let out: string;
let server: TestServer;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'lander-e2e-chunked-'));
  src = path.join(work, 'src');
  out = path.join(work, 'out');
  // Libraries dominate the bytes, as in a real PyInstaller core (the bench core: 1.2% over gzip -6).
  await makeSourceTree(src, { files: 80, libBytes: 2 * 1024 * 1024 });
  // One component for the whole folder (the nvidia rules would want CUDA files too).
  const rules = path.join(work, 'rules.json');
  await writeFile(rules, JSON.stringify({ default: 'core', components: { core: { asset: 'core-{version}.tar.gz' } }, rules: [{ prefix: '_internal/', component: 'core' }] }));
  const r = await runLander(['pack', src, '--out', out, '--rules', rules, '--component-version', 'core=1.0'], { SOURCE_DATE_EPOCH: '1767225600' });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  server = await startTestServer();
  for (const f of [ASSET, `${ASSET}.sha256`]) await server.serveFile(`/rel/${f}`, path.join(out, f));
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe('chunked archives', () => {
  it('are many gzip members that tile the file, each inflating alone to the bytes its index hashes', async () => {
    const gz = await readFile(path.join(out, ASSET));
    const index = decodeIndex(await readFile(path.join(out, `${ASSET}.index`)));
    expect(index.archiveSha256).toBe(sha(gz));
    expect(index.members.length).toBeGreaterThan(20);
    const tar = gunzipSync(gz);
    expect(index.tarSize).toBe(tar.length);
    for (const m of index.members) {
      const raw = gunzipSync(gz.subarray(m.gzOffset, m.gzOffset + m.gzLength));
      expect(raw.length).toBe(m.tarLength);
      // A metadata member (headers, padding, the end marker) has no hash: no file's data lies in it.
      if (m.sha256 === '') expect(index.entries.some((e) => e.size > 0 && e.dataOffset < m.tarOffset + m.tarLength && e.dataOffset + e.size > m.tarOffset)).toBe(false);
      else expect(sha(raw)).toBe(m.sha256);
      expect(raw.equals(tar.subarray(m.tarOffset, m.tarOffset + m.tarLength))).toBe(true);
    }
    for (const e of index.entries.filter((x) => x.type === 'file')) {
      expect(sha(tar.subarray(e.dataOffset, e.dataOffset + e.size))).toBe(e.sha256);
    }
    // Members hold one file's data or metadata only, never both: a file that changes size leaves its neighbours' data members equal.
    expect(index.members.filter((m) => m.sha256 === '').length).toBeGreaterThanOrEqual(index.entries.filter((e) => e.type === 'file' && e.size > 0).length);
  });

  it('extract with GNU tar as an unprivileged user, and with Python tarfile (filter="data"), to the source tree', async () => {
    const want = await snapshotTree(src);
    const gnu = path.join(work, 'gnu');
    await mkdir(gnu);
    await chmod(work, 0o755);
    await chmod(gnu, 0o777);
    const asRoot = process.getuid?.() === 0;
    const cmd = asRoot ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', 'tar'] : ['tar'];
    const t = spawnSync(cmd[0]!, [...cmd.slice(1), '-xzf', path.join(out, ASSET), '-C', gnu], { encoding: 'utf8' });
    expect(t.stderr).toBe('');
    expect(t.status).toBe(0);
    expect(await snapshotTree(gnu)).toEqual(want);
    const pyDir = path.join(work, 'py');
    const p = spawnSync('python3', ['-c', 'import sys, tarfile\nwith tarfile.open(sys.argv[1]) as t: t.extractall(sys.argv[2], filter="data")', path.join(out, ASSET), pyDir], { encoding: 'utf8' });
    expect(p.stderr).toBe('');
    expect(p.status).toBe(0);
    expect(await snapshotTree(pyDir)).toEqual(want);
  });

  it("extract with voicebox's download-and-extract logic from loopback", async () => {
    const dest = path.join(work, 'voicebox');
    const script = `
import hashlib, os, sys, tarfile, tempfile, urllib.request
base, name, dest = sys.argv[1:4]
expected = urllib.request.urlopen(f"{base}/{name}.sha256").read().decode().split()[0]
fd, tmp = tempfile.mkstemp(suffix=".tar.gz")
h = hashlib.sha256()
with os.fdopen(fd, "wb") as f, urllib.request.urlopen(f"{base}/{name}") as r:
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        f.write(chunk)
if h.hexdigest() != expected:
    sys.exit("checksum mismatch")
os.makedirs(dest, exist_ok=True)
with tarfile.open(tmp, "r:gz") as t:
    t.extractall(path=dest, filter="data")
os.unlink(tmp)
`;
    // Not spawnSync: the test server answers from this thread.
    const p = await new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn('python3', ['-c', script, server.url('/rel'), ASSET, dest], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (status) => resolve({ status, stderr }));
    });
    expect(p.stderr).toBe('');
    expect(p.status).toBe(0);
    expect(await snapshotTree(dest)).toEqual(await snapshotTree(src));
  });

  it('is within 3% of gzip -6 of the same tar', async () => {
    const gz = await readFile(path.join(out, ASSET));
    // Through files, not stdin: Deno's spawnSync stalls on a multi-megabyte input.
    const tarFile = path.join(work, 'same.tar');
    await writeFile(tarFile, gunzipSync(gz));
    const g6 = spawnSync('sh', ['-c', 'gzip -6 -n -c "$1" | wc -c', 'sh', tarFile], { encoding: 'utf8' });
    expect(g6.status).toBe(0);
    expect(gz.length / Number(g6.stdout.trim())).toBeLessThan(1.03);
  });
});
