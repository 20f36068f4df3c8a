/**
 * Issue 13, item 1: with no end-of-archive blocks, tar-stream finishes as soon
 * as it has handed out the last body, before that file is written; the
 * extraction used to count as done then, and the last file was missing from
 * the tree and from `files` (19 of 20 installs). Looped: a race shows only
 * sometimes.
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExtraction } from '../../src/install/extract.ts';
import { TEST_LIMITS } from '../helpers/install-request.ts';
import { fileEntry, tempDir } from '../helpers/tar-oracle.ts';

let work: string;
beforeAll(async () => { work = await tempDir('lander-lastfile-'); });
afterAll(async () => { await rm(work, { recursive: true, force: true }); });

const second = Buffer.alloc(300_000, 0x62); // several write chunks: the write outlives tar-stream's finish
const shapes = {
  'no end blocks': Buffer.concat([fileEntry('a', 'first\n'), fileEntry('b', second)]),
  'no end blocks, last body a whole number of blocks': Buffer.concat([fileEntry('a', 'first\n'), fileEntry('b', Buffer.alloc(512 * 600, 0x63))]),
  'ordinary end blocks': Buffer.concat([fileEntry('a', 'first\n'), fileEntry('b', second), Buffer.alloc(10240)]),
};

describe('the last file of an archive is never dropped (issue 13 #1)', () => {
  for (const [name, tar] of Object.entries(shapes)) {
    it(`${name}: 50 extractions, each with both files whole on disk and in the record`, async () => {
      const gz = gzipSync(tar, { level: 1 });
      const want = tar.subarray(512 + 512 + 512, 512 + 512 + 512 + (name.includes('whole') ? 512 * 600 : second.length));
      for (let i = 0; i < 50; i++) {
        const dir = path.join(work, `s${i}`);
        const x = await startExtraction({ component: 'c', stagingDir: dir, limits: TEST_LIMITS, archiveBytes: () => gz.length, flush: 'none' });
        x.input.end(gz);
        await x.finished;
        expect(x.files.map((f) => f.path), `round ${i}`).toEqual(['a', 'b']);
        expect((await readFile(path.join(dir, 'b'))).equals(want), `round ${i}: b whole`).toBe(true);
        expect(x.extractedBytes()).toBe(6 + want.length);
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
