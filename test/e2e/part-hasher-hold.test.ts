/**
 * The hash worker is told of no new `.part` bytes while the link's first
 * bytes are measured (`PartHasher.hold`, `download-attempt.ts`): reading,
 * hashing and inflating them would take the CPU the socket needs, and on two
 * cores a loopback link then measured under 64 MiB/s and went to eight
 * connections. Held, nothing is read (no worker runs); released, it catches
 * up and the digest is the file's. A real file and a real worker thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PartHasher } from '../../src/install/part-hasher.ts';

let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(tmpdir(), 'lander-hold-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const started = (h: PartHasher) => (h as unknown as { worker?: unknown }).worker !== undefined;

describe('PartHasher.hold', () => {
  it('starts no worker and reads nothing while held past the hand-off; released, the digest is the whole file\'s', async () => {
    const bytes = randomBytes(20 << 20); // past the 16 MiB hand-off to the worker
    const file = path.join(dir, 'a.part');
    await writeFile(file, bytes);
    const h = new PartHasher(file);
    h.hold(true);
    for (let n = 1 << 20; n <= bytes.length; n += 1 << 20) h.onDisk(n);
    expect(started(h), 'a held hasher started its worker').toBe(false);
    h.hold(false);
    expect(started(h), 'released, it tells the worker how far the file is').toBe(true);
    expect(await h.digest(bytes.length)).toBe(createHash('sha256').update(bytes).digest('hex'));
    h.close();
  });

  it('unheld, the worker starts past the hand-off as the bytes land', async () => {
    const bytes = randomBytes(18 << 20);
    const file = path.join(dir, 'b.part');
    await writeFile(file, bytes);
    const h = new PartHasher(file);
    h.onDisk(17 << 20);
    expect(started(h)).toBe(true);
    expect(await h.digest(bytes.length)).toBe(createHash('sha256').update(bytes).digest('hex'));
    h.close();
  });
});
