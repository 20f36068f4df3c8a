/**
 * The indexed install: fetch and verify the index, plan the tree and the
 * reuse, create the tree in a fresh staging folder, then fill it: whole
 * unchanged files hard-linked to installed store entries, reused members
 * copied from installed files, the other members fetched in coalesced Range
 * runs, each inflated and checked (SHA-256, tar headers) by the worker pool
 * and written at its offsets. Every file's content hash is checked last.
 *
 * Trust: the index is used only if its SHA-256 equals the trusted one and it
 * names the trusted archive digest; a member is written only after its own
 * hash matches the index. Resume: fetched members are kept in
 * `<partPath>` at their archive offsets and listed in `<partPath>.json` once
 * verified; a later run re-checks and uses them instead of fetching.
 */
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { chmod, link, mkdir, open, readFile, rm, symlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AbortError, ArchiveError, DigestMismatchError, DownloadError, LanderError, StoreError, hasCode } from '../../base/errors.ts';
import { writeFileAtomic } from '../../base/atomic-file.ts';
import { backoffDelay, sleep } from '../../base/backoff.ts';
import type { ExtractLimits, FileRecord } from '../../../workers/protocol.ts';
import type { ExpectedHeader } from '../../../workers/inflate-protocol.ts';
import type { ChunkIndex } from './index-format.ts';
import { fetchIndexFile, type FetchedIndex } from './index-fetch.ts';
import { InflatePool } from './inflate-pool.ts';
import { httpRangeSource, type RangeSource } from './range-source.ts';
import { computeReusePlan, onlyMetadataBetween, type LocalSource, type ReusePlan } from './reuse-plan.ts';
import { planTree, type TreePlan } from './tree-plan.ts';

export interface ChunkedInstallRequest {
  component: string;
  version: string;
  /** Archive mirrors; ranges come from the first that answers them. */
  urls: string[];
  /** The trusted archive digest (config, manifest or sidecar). */
  sha256: string;
  size?: number;
  /** The index and its trusted digest. */
  index: { url: string; sha256: string; size?: number };
  /** Must not exist; created with mode 0700. */
  stagingDir: string;
  /** Fetched members at their archive offsets; `<partPath>.json` lists the verified ones. */
  partPath: string;
  limits: ExtractLimits;
  /** Installed store entries to reuse from. */
  sources: LocalSource[];
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** @default os.availableParallelism() */
  workers?: number;
}

export interface ChunkedProgress {
  /** Archive bytes fetched from the network so far (index included). */
  fetchedBytes: number;
  /** File bytes taken from the store (hard links and copied members). */
  reusedBytes: number;
  /** Archive bytes the plan fetches in all. */
  fetchTotal: number;
}

export interface ChunkedInstallContext {
  signal: AbortSignal;
  source?: RangeSource;
  onProgress?(p: ChunkedProgress): void;
  log?(level: 'info' | 'warn', event: string, fields: Record<string, unknown>, msg: string): void;
}

export interface ChunkedDone {
  files: FileRecord[];
  /** The verified index file, for the store to keep beside the entry. */
  index: Buffer;
  bytes: number;
  downloadedBytes: number;
  reusedBytes: number;
  extractedBytes: number;
  plan: { links: number; copies: number; fetched: number; members: number; runs: number };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const CREATE = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
/** A hard cap on range attempts per run even while each makes progress. */
const ATTEMPTS_PER_RUN = 50;
/** Archive bytes per pool job while fetching. */
const BATCH = 1 << 20;

/**
 * Fetches and verifies the index against the trusted digests: its head
 * against `req.index.sha256`, every page and leaf against the head, taking
 * those that `kept` (indexes of installed entries) hold instead of fetching
 * them, and the archive it names against `req.sha256`.
 *
 * @throws DigestMismatchError, ArchiveError `ERR_INDEX_MISMATCH` / `ERR_INDEX_INVALID`
 */
export async function fetchIndex(req: Pick<ChunkedInstallRequest, 'component' | 'version' | 'sha256' | 'size' | 'index'> & { retries?: number }, source: RangeSource, signal: AbortSignal, kept: readonly Buffer[] = []): Promise<FetchedIndex> {
  const got = await fetchIndexFile({ component: req.component, version: req.version, url: req.index.url, sha256: req.index.sha256, ...(req.index.size !== undefined ? { size: req.index.size } : {}), ...(req.retries !== undefined ? { retries: req.retries } : {}), archive: { sha256: req.sha256, ...(req.size !== undefined ? { size: req.size } : {}) } }, source, signal, kept);
  const { index } = got;
  if (index.archiveSha256 !== req.sha256 || (req.size !== undefined && index.archiveSize !== req.size)) {
    throw new ArchiveError('ERR_INDEX_MISMATCH', `Cannot install ${req.component} ${req.version}: the chunk index describes the archive ${index.archiveSha256} (${index.archiveSize} bytes), not the expected ${req.sha256}`, { data: { component: req.component, expected: req.sha256, actual: index.archiveSha256 } });
  }
  return got;
}

export async function runChunkedInstall(req: ChunkedInstallRequest, ctx: ChunkedInstallContext): Promise<ChunkedDone> {
  const source = ctx.source ?? httpRangeSource();
  const { index, file, fetched: indexBytes } = await fetchIndex(req, source, ctx.signal, req.sources.flatMap((s) => (s.indexFile ? [s.indexFile] : [])));
  const tree = planTree(index.entries, req.limits, req.component);
  const plan = computeReusePlan(index, tree, req.sources);
  const log = ctx.log ?? (() => undefined);
  log('info', 'install.chunked-plan', { links: plan.links.length, copies: plan.copies.length, fetch: plan.fetch.length, members: index.members.length, runs: plan.runs.length, fetchBytes: plan.fetchBytes, reusedBytes: plan.reusedBytes }, 'chunked install planned');
  const pool = new InflatePool(req.workers);
  const job = new ChunkedJob(req, ctx, source, index, tree, plan, pool, indexBytes);
  try {
    await job.run();
    return {
      files: tree.files, index: file, bytes: index.archiveSize, downloadedBytes: job.fetched, reusedBytes: plan.reusedBytes, extractedBytes: tree.bytes,
      plan: { links: plan.links.length, copies: plan.copies.length, fetched: plan.fetch.length, members: index.members.length, runs: plan.runs.length },
    };
  } catch (e) {
    let err = e;
    if (ctx.signal.aborted && !(err instanceof LanderError && !hasCode(err, 'ERR_ABORTED'))) err = new AbortError(`Cannot install ${req.component} ${req.version}: aborted`, { cause: e });
    await rm(req.stagingDir, { recursive: true, force: true });
    throw err;
  } finally {
    await pool.close();
  }
}

class ChunkedJob {
  fetched: number;
  private readonly verified = new Set<number>();
  private lastJournal = 0;
  private readonly req: ChunkedInstallRequest;
  private readonly ctx: ChunkedInstallContext;
  private readonly source: RangeSource;
  private readonly index: ChunkIndex;
  private readonly tree: TreePlan;
  private readonly plan: ReusePlan;
  private readonly pool: InflatePool;

  constructor(req: ChunkedInstallRequest, ctx: ChunkedInstallContext, source: RangeSource, index: ChunkIndex, tree: TreePlan, plan: ReusePlan, pool: InflatePool, indexBytes: number) {
    this.req = req; this.ctx = ctx; this.source = source; this.index = index; this.tree = tree; this.plan = plan; this.pool = pool;
    this.fetched = indexBytes;
  }

  /** The first job failure: fetching stops at the next chunk instead of going on to no purpose. */
  private failure: unknown;

  /** Records a job's failure as it happens (and marks it handled); the job is still awaited later. */
  private track(p: Promise<void>): Promise<void> {
    p.catch((err: unknown) => { this.failure ??= err; });
    return p;
  }

  private log(level: 'info' | 'warn', event: string, fields: Record<string, unknown>, msg: string): void {
    this.ctx.log?.(level, event, fields, msg);
  }

  private abs(rel: string): string {
    return path.join(this.req.stagingDir, rel);
  }

  private progress(): void {
    this.ctx.onProgress?.({ fetchedBytes: this.fetched, reusedBytes: this.plan.reusedBytes, fetchTotal: this.plan.fetchBytes });
  }

  async run(): Promise<void> {
    await this.createTree();
    const part = await open(this.req.partPath, fsc.O_RDWR | fsc.O_CREAT, 0o644);
    try {
      const copies = this.plan.copies.map((c) => this.track(this.pool.run({ type: 'copy', from: path.join(c.from.dir, c.from.path), fromOffset: c.from.offset, to: this.abs(c.to.path), toOffset: c.to.offset, length: c.length })));
      const { kept, jobs } = await this.resume(part);
      const members: Promise<void>[] = [...jobs];
      for (const run of this.plan.runs) {
        if (this.failure) break;
        const todo = run.members.filter((m) => !this.verified.has(m) && !kept.has(m));
        if (todo.length > 0) members.push(...(await this.fetchRun(todo)));
      }
      const results = await Promise.allSettled([...copies, ...members]);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      await this.writeJournal(true);
    } finally {
      await part.close();
    }
    await this.checkFiles();
    // Folders were created 0700 so nothing could be planted in them meanwhile; now their final mode.
    for (const op of this.tree.ops) if (op.kind === 'dir') await chmod(this.abs(op.path), 0o755);
    this.progress();
  }

  private async createTree(): Promise<void> {
    await mkdir(path.dirname(this.req.stagingDir), { recursive: true });
    await mkdir(this.req.stagingDir, { mode: 0o700 });
    const linked = new Map(this.plan.links.map((l) => [l.path, l]));
    for (const op of this.tree.ops) {
      const abs = this.abs(op.path);
      try {
        if (op.kind === 'dir') await mkdir(abs, { mode: 0o700 });
        else if (op.kind === 'symlink') await symlink(op.target, abs);
        else if (op.kind === 'link') await link(this.abs(op.target), abs);
        else {
          const from = linked.get(op.path);
          if (from) await link(path.join(from.from.dir, from.from.path), abs);
          else {
            const fh = await open(abs, CREATE, op.mode);
            try {
              await fh.chmod(op.mode);
              if (op.size > 0) await fh.truncate(op.size);
            } finally {
              await fh.close();
            }
          }
        }
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' || code === 'ELOOP') throw new ArchiveError('ERR_ARCHIVE_PATH', `Cannot extract ${this.req.component}: entry ${JSON.stringify(op.path)} could not be created safely (${code})`, { cause: err, data: { component: this.req.component, entry: op.path } });
        throw new StoreError('ERR_EXTRACT_WRITE', `Cannot extract ${this.req.component}: writing ${JSON.stringify(op.path)} failed: ${(err as Error).message}`, { cause: err, data: { component: this.req.component, entry: op.path } });
      }
    }
  }

  /** The job for members `batch` (contiguous in the archive, `gz` from archive offset `gzOffset`): pieces, headers, the end marker, the part-file write. */
  private memberJob(batch: number[], gz: Uint8Array, gzOffset: number) {
    const es = this.index.entries;
    const last = es[es.length - 1];
    const lastEnd = last ? last.dataOffset + last.size + ((512 - (last.size % 512)) % 512) : 0;
    const specs = batch.map((m) => {
      const mem = this.index.members[m]!;
      const end = mem.tarOffset + mem.tarLength;
      const headers: ExpectedHeader[] = [];
      let lo = 0;
      for (let hi = es.length; lo < hi;) {
        const mid = (lo + hi) >> 1;
        if (es[mid]!.headerOffset < mem.tarOffset) lo = mid + 1;
        else hi = mid;
      }
      for (let i = lo; i < es.length && es[i]!.headerOffset < end; i++) {
        const e = es[i]!;
        headers.push({ at: e.headerOffset - mem.tarOffset, blocks: (e.dataOffset - e.headerOffset) / 512, name: e.name, type: e.type, mode: e.mode, size: e.size, ...(e.linkname !== undefined ? { linkname: e.linkname } : {}) });
      }
      const zerosFrom = lastEnd < end ? Math.max(0, lastEnd - mem.tarOffset) : undefined;
      const pieces = (this.plan.pieces.get(m) ?? []).map((p) => ({ ...p, path: this.abs(p.path) }));
      return { member: m, gzStart: mem.gzOffset - gzOffset, gzLength: mem.gzLength, tarLength: mem.tarLength, sha256: mem.sha256, pieces, headers, ...(zerosFrom !== undefined ? { zerosFrom } : {}) };
    });
    return { type: 'member' as const, gz, members: specs, part: { path: this.req.partPath, offset: gzOffset } };
  }

  /**
   * Members a previous run verified, read back from the part file and
   * checked again; one that fails now is fetched after all.
   */
  private async resume(part: FileHandle): Promise<{ kept: Set<number>; jobs: Promise<void>[] }> {
    let listed: number[] = [];
    try {
      const j = JSON.parse(await readFile(`${this.req.partPath}.json`, 'utf8')) as { archive?: string; members?: unknown };
      if (j.archive === this.req.sha256 && Array.isArray(j.members)) listed = j.members.filter((m): m is number => Number.isInteger(m));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    const wanted = new Set(this.plan.fetch);
    const kept = new Set<number>();
    const jobs: Promise<void>[] = [];
    for (const m of listed) {
      if (!wanted.has(m)) continue;
      const mem = this.index.members[m]!;
      const buf = Buffer.alloc(mem.gzLength);
      const { bytesRead } = await part.read(buf, 0, mem.gzLength, mem.gzOffset);
      if (bytesRead !== mem.gzLength) continue;
      kept.add(m);
      jobs.push(this.track(this.pool.run(this.memberJob([m], buf, mem.gzOffset)).then(
        () => { this.verified.add(m); },
        async () => { for (const p of await this.fetchRun([m])) await p; },
      )));
    }
    if (kept.size > 0) this.log('info', 'install.chunked-resume', { members: kept.size, bytes: [...kept].reduce((n, m) => n + this.index.members[m]!.gzLength, 0) }, 'resuming: members verified by an earlier run are used again');
    return { kept, jobs };
  }

  /**
   * Fetches `members` (neighbours in the archive) with as few ranges as a
   * breaking server allows. Complete members go to the pool in batches of
   * about BATCH bytes (one message, one part-file write, one open per file
   * per batch); a range that breaks resumes from the first member not yet whole.
   */
  private async fetchRun(members: number[]): Promise<Promise<void>[]> {
    const jobs: Promise<void>[] = [];
    const ms = this.index.members;
    let next = 0; // index into members of the first member not yet received
    let failures = 0;
    for (let attempt = 0; next < members.length; attempt++) {
      if (attempt >= ATTEMPTS_PER_RUN) throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${this.req.component} ${this.req.version}: ${ATTEMPTS_PER_RUN} range attempts for one run`, { data: { component: this.req.component } });
      this.ctx.signal.throwIfAborted();
      const url = this.req.urls[Math.min(this.req.urls.length - 1, Math.floor(failures / (this.req.retries + 1)))]!;
      // Members from `next` form one range while only metadata members (never fetched for their own sake) lie between them; those bytes are dropped.
      let last = next;
      while (last + 1 < members.length && onlyMetadataBetween(ms, members[last]!, members[last + 1]!)) last++;
      const start = ms[members[next]!]!.gzOffset;
      const end = ms[members[last]!]!.gzOffset + ms[members[last]!]!.gzLength;
      const before = next;
      let pending: Buffer[] = []; // bytes received from archive offset `pendingAt` on
      let pendingAt = start;
      let received = start; // archive offset reached
      let batchFrom = next;
      const dispatch = () => {
        if (next === batchFrom) return;
        const from = ms[members[batchFrom]!]!.gzOffset;
        const to = ms[members[next - 1]!]!.gzOffset + ms[members[next - 1]!]!.gzLength;
        const all = Buffer.concat(pending);
        const gz = ownBuffer(to - from);
        // Bytes before `from` are metadata members between batches: dropped.
        all.copy(gz, 0, from - pendingAt, to - pendingAt);
        pending = all.length > to - pendingAt ? [all.subarray(to - pendingAt)] : [];
        pendingAt = to;
        const batch = members.slice(batchFrom, next);
        batchFrom = next;
        // The metadata members between them arrived too: their tar headers are checked against the index on the way.
        const checked = batch.flatMap((m, i) => (i === 0 ? [m] : [...Array.from({ length: m - batch[i - 1]! - 1 }, (_, k) => batch[i - 1]! + 1 + k), m]));
        jobs.push(this.track(this.pool.run(this.memberJob(checked, gz, from)).then(() => {
          for (const m of batch) this.verified.add(m);
          return this.writeJournal(false);
        })));
      };
      try {
        const body = await this.source.range(url, start, end, this.ctx.signal);
        for await (const chunk of body) {
          if (this.failure) throw this.failure;
          this.fetched += chunk.length;
          const take = Math.min(chunk.length, end - received);
          pending.push(chunk.subarray(0, take));
          received += take;
          while (next <= last && received >= ms[members[next]!]!.gzOffset + ms[members[next]!]!.gzLength) next++;
          if (next > batchFrom && ms[members[next - 1]!]!.gzOffset + ms[members[next - 1]!]!.gzLength - ms[members[batchFrom]!]!.gzOffset >= BATCH) dispatch();
          this.progress();
          // Flat memory: wait for the pool when it falls behind the network.
          await this.pool.below(this.pool.size * 2);
        }
        dispatch();
        if (next <= last) throw new Error(`the range ended at ${received}, before member ${members[next]} ended`);
      } catch (err) {
        dispatch(); // what arrived whole is kept
        if (this.ctx.signal.aborted || hasCode(err, 'ERR_RANGE_UNSUPPORTED') || err instanceof LanderError && !(err instanceof DownloadError)) throw err;
        failures = next > before ? 0 : failures + 1;
        if (failures > (this.req.retries + 1) * this.req.urls.length) {
          throw new DownloadError('ERR_DOWNLOAD_FAILED', `Cannot download ${this.req.component} ${this.req.version}: ${(err as Error).message}`, { cause: err, data: { component: this.req.component, url } });
        }
        const delayMs = backoffDelay({ attempt: Math.max(1, failures), initialMs: this.req.backoffInitialMs, maxMs: this.req.backoffMaxMs });
        this.log('warn', 'install.chunked-retry', { url, attempt: attempt + 1, delayMs, reason: (err as Error).message, member: members[next] }, 'retrying the range from the first member not yet received');
        await sleep(delayMs, this.ctx.signal);
      }
    }
    return jobs;
  }

  /** `<partPath>.json`: the verified members, at most every 250 ms while fetching (a crash loses at most those). */
  private async writeJournal(force: boolean): Promise<void> {
    const now = performance.now();
    if (!force && now - this.lastJournal < 250) return;
    this.lastJournal = now;
    await writeFileAtomic(`${this.req.partPath}.json`, JSON.stringify({ archive: this.req.sha256, members: [...this.verified].sort((a, b) => a - b) }) + '\n');
  }

  /** Every file written here against its content hash in the index (hard-linked ones carry the store's). */
  private async checkFiles(): Promise<void> {
    const linked = new Set(this.plan.links.map((l) => l.path));
    const empty = sha(new Uint8Array(0));
    const checks: Promise<void>[] = [];
    for (const op of this.tree.ops) {
      if (op.kind !== 'file' || linked.has(op.path)) continue;
      if (op.size === 0) {
        if (op.sha256 !== empty) throw new DigestMismatchError(`Cannot install ${this.req.component}: the empty file ${JSON.stringify(op.path)} has the content hash ${op.sha256} in the index`, { data: { entry: op.path } });
        continue;
      }
      checks.push(this.pool.run({ type: 'hash', path: this.abs(op.path), size: op.size, sha256: op.sha256 }));
    }
    const results = await Promise.allSettled(checks);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

/** A buffer over its own ArrayBuffer, so the pool can transfer it to a worker instead of copying. */
function ownBuffer(n: number): Buffer {
  return Buffer.from(new ArrayBuffer(n));
}

