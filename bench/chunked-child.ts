/**
 * One cold chunked install in a fresh process:
 * `node dist/bench/chunked-child.js '<json>'` with `{ url, indexUrl, sha256, indexSha256, dir, part, workers, connections }`.
 * Prints `{ innerMs, cpuMs, maxRssKiB, bytes }`.
 */
import { runChunkedInstall } from '../src/install/chunked/chunked-install.ts';

const job = JSON.parse(process.argv[2]!) as { url: string; indexUrl: string; sha256: string; indexSha256: string; dir: string; part: string; workers?: number; connections?: number };
const t0 = performance.now();
const done = await runChunkedInstall({
  component: 'cuda-libs', version: 'bench', urls: [job.url], sha256: job.sha256, index: { url: job.indexUrl, sha256: job.indexSha256 },
  stagingDir: job.dir, partPath: job.part, sources: [], retries: 0, backoffInitialMs: 100, backoffMaxMs: 1000,
  limits: { maxEntries: 200_000, maxExpansionRatio: 200, maxMetaEntrySize: 1 << 20, maxPathLength: 4096, maxPathDepth: 64, maxExtractedBytes: 64 * 2 ** 30 },
  ...(job.workers ? { workers: job.workers } : {}),
  ...(job.connections ? { connections: job.connections } : {}),
}, { signal: new AbortController().signal, log: (level, event, fields) => { if (level === 'warn') process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`); } });
const ru = process.resourceUsage();
process.stdout.write(`${JSON.stringify({ innerMs: performance.now() - t0, cpuMs: (ru.userCPUTime + ru.systemCPUTime) / 1000, maxRssKiB: ru.maxRSS, bytes: done.bytes })}\n`);
