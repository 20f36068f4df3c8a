/**
 * The indexed install: fetch and verify the index, plan the tree and the
 * reuse, create the tree in a fresh folder, then fill it: whole unchanged
 * files hard-linked to installed store entries, reused members copied from
 * installed files, the other members fetched in coalesced Range runs over
 * several connections (fetch-run.ts), each inflated and checked (SHA-256,
 * tar headers) by the worker pool and written at its offsets as it
 * arrives. Files holding bytes from anywhere but a member verified in this
 * run are hashed last (file-checks.ts); then the tree becomes the staging
 * folder.
 *
 * Trust: the index is used only if its SHA-256 equals the trusted one and it
 * names the trusted archive digest; a member is written only after its own
 * hash matches the index. Resume: the tree is built at `<partPath>.tree` and
 * `<partPath>.json` lists the members verified into it; a later run copies
 * those from the old tree and hashes the files they land in
 * (resume-tree.ts). No fetched byte is written twice.
 */
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { chmod, link, mkdir, open, rename, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { isMainThread } from 'node:worker_threads';
import { AbortError, ArchiveError, DigestMismatchError, LanderError, StoreError, hasCode } from '../../base/errors.ts';
import type { ExtractLimits, FileRecord } from '../../../workers/protocol.ts';
import type { ExpectedHeader } from '../../../workers/inflate-protocol.ts';
import type { ChunkIndex } from './index-format.ts';
import { fetchIndexFile, type FetchedIndex } from './index-fetch.ts';
import { fetchRun, segmentRuns, type RunFetchContext } from './fetch-run.ts';
import { filesToHash, type FileOp } from './file-checks.ts';
import { InflatePool } from './inflate-pool.ts';
import { httpRangeSource, type RangeSource } from './range-source.ts';
import { computeReusePlan, withMetadataBetween, type LocalSource, type ReusePlan } from './reuse-plan.ts';
import { MemberSet, resumeCopies, resumePaths, takeUpEarlierRun, writeJournal, type ResumePaths } from './resume-tree.ts';
import { planTree, type TreePlan } from './tree-plan.ts';
import { flushTree } from '../flush.ts';

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
  /** Resume state: the tree is built at `<partPath>.tree`, `<partPath>.json` lists the members verified into it. */
  partPath: string;
  limits: ExtractLimits;
  /** Installed store entries to reuse from. */
  sources: LocalSource[];
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** @default os.availableParallelism() */
  workers?: number;
  /** Range requests at a time. @default 4 */
  connections?: number;
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
/** Archive bytes per pool job while fetching (one message, one open per file per batch). */
const BATCH = 2 << 20;
/** Long runs are fetched in segments of about this many archive bytes, several at a time. */
const SEGMENT = 8 << 20;
const CONNECTIONS = 4;

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
  return got; // fetchIndexFile refused an index for another archive
}

export async function runChunkedInstall(req: ChunkedInstallRequest, ctx: ChunkedInstallContext): Promise<ChunkedDone> {
  const source = ctx.source ?? httpRangeSource();
  const { index, file, fetched: indexBytes } = await fetchIndex(req, source, ctx.signal, req.sources.flatMap((s) => (s.indexFile ? [s.indexFile] : [])));
  const tree = planTree(index.entries, req.limits, req.component);
  const plan = computeReusePlan(index, tree, req.sources);
  const log = ctx.log ?? (() => undefined);
  log('info', 'install.chunked-plan', { links: plan.links.length, copies: plan.copies.length, fetch: plan.fetch.length, members: index.members.length, runs: plan.runs.length, fetchBytes: plan.fetchBytes, reusedBytes: plan.reusedBytes, worker: !isMainThread }, 'chunked install planned');
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
    // The tree stays for a later run to resume from (resume-tree.ts); the staging folder is the caller's.
    await rm(req.stagingDir, { recursive: true, force: true });
    throw err;
  } finally {
    await pool.close();
  }
}

class ChunkedJob {
  fetched: number;
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
    this.paths = resumePaths(req.partPath);
    this.verified = new MemberSet(index.members.length);
  }

  private readonly verified: MemberSet;

  private readonly paths: ResumePaths;
  /** Files that receive pieces resumed from an interrupted run: hashed at the end. */
  private readonly resumedFiles = new Set<string>();

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
    let a = this.absPaths.get(rel);
    if (a === undefined) this.absPaths.set(rel, (a = path.join(this.paths.tree, rel)));
    return a;
  }

  private readonly absPaths = new Map<string, string>();

  private progress(): void {
    this.ctx.onProgress?.({ fetchedBytes: this.fetched, reusedBytes: this.plan.reusedBytes, fetchTotal: this.plan.fetchBytes });
  }

  async run(): Promise<void> {
    const listed = await takeUpEarlierRun(this.paths, this.req.sha256);
    await this.createTree();
    const copies = this.plan.copies.map((c) => this.track(this.pool.run({ type: 'copy', from: path.join(c.from.dir, c.from.path), fromOffset: c.from.offset, to: this.abs(c.to.path), toOffset: c.to.offset, length: c.length })));
    const { kept, jobs } = this.resume(listed);
    const todo = this.plan.fetch.filter((m) => !kept.has(m));
    const results = await Promise.allSettled([this.fetchAll(todo), ...copies, ...jobs]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    await this.writeJournal(true);
    await this.checkFiles();
    // Folders were created 0700 so nothing could be planted in them meanwhile; now their final mode.
    for (const op of this.tree.ops) if (op.kind === 'dir') await chmod(this.abs(op.path), 0o755);
    // Durable before visible (as the one pass): the tree's data and folder entries reach the disk before
    // the store can rename it in. One syncfs (no resume .part here to drag along); file by file without `sync`.
    const files = this.tree.ops.filter((op) => op.kind === 'file').map((op) => this.abs(op.path));
    const dirs = this.tree.ops.filter((op) => op.kind === 'dir').map((op) => this.abs(op.path));
    await flushTree('syncfs', this.paths.tree, files, dirs);
    await rm(this.paths.prev, { recursive: true, force: true });
    await mkdir(path.dirname(this.req.stagingDir), { recursive: true });
    await rename(this.paths.tree, this.req.stagingDir);
    this.progress();
  }

  /** Fetches `members` over up to `connections` ranges at a time (long runs in segments), each batch to the pool as it arrives. */
  private async fetchAll(members: readonly number[]): Promise<void> {
    const segments = segmentRuns(this.index.members, withMetadataBetween(this.index.members, members), SEGMENT);
    const ctx: RunFetchContext = {
      component: this.req.component, version: this.req.version, urls: this.req.urls, retries: this.req.retries,
      backoffInitialMs: this.req.backoffInitialMs, backoffMaxMs: this.req.backoffMaxMs, members: this.index.members,
      source: this.source, signal: this.ctx.signal, batchBytes: BATCH,
      failure: () => this.failure,
      received: (n) => { this.fetched += n; this.progress(); },
      dispatch: (batch, gz, at) => { this.jobs.push(this.memberJobRun(batch, gz, at)); },
      room: () => this.pool.below(this.pool.size * 2),
      log: (level, event, fields, msg) => this.log(level, event, fields, msg),
    };
    let next = 0;
    const lane = async () => {
      while (!this.failure && next < segments.length) await this.track(fetchRun(ctx, segments[next++]!));
    };
    const lanes = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(this.req.connections ?? CONNECTIONS, segments.length)) }, lane));
    // Every dispatched job settles before the install's outcome is decided.
    const results = [...lanes, ...await Promise.allSettled(this.jobs)];
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  private readonly jobs: Promise<void>[] = [];

  /** Runs one batch in the pool; once written, its members are verified (journal). */
  private memberJobRun(batch: number[], gz: Buffer, at: number): Promise<void> {
    return this.track(this.pool.run(this.memberJob(batch, gz, at)).then(() => {
      // Metadata members (no hash, no file data) ride along but leave nothing to resume.
      for (const m of batch) if (this.index.members[m]!.sha256 !== '') this.verified.add(m);
      return this.writeJournal(false);
    }));
  }

  private async createTree(): Promise<void> {
    await mkdir(path.dirname(this.paths.tree), { recursive: true });
    await mkdir(this.paths.tree, { mode: 0o700 });
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

  /** The job for members `batch` (contiguous in the archive, `gz` from archive offset `gzOffset`): pieces, headers, the end marker. */
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
    return { type: 'member' as const, gz, members: specs };
  }

  /**
   * Members an earlier run verified (listed in its journal): their file
   * pieces are copied from the old tree, and the files they land in are
   * hashed at the end (checkFiles). A copy that fails has its members
   * fetched after all.
   */
  private resume(listed: readonly number[]): { kept: Set<number>; jobs: Promise<void>[] } {
    const wanted = new Set(this.plan.fetch);
    const kept = new Set(listed.filter((m) => wanted.has(m)));
    const copies = resumeCopies(this.plan.pieces, [...kept], BATCH);
    for (const c of copies) this.resumedFiles.add(c.path);
    const jobs = copies.map((c) => this.track(this.pool.run({ type: 'copy', from: path.join(this.paths.prev, c.path), fromOffset: c.offset, to: this.abs(c.path), toOffset: c.offset, length: c.length }).then(
      () => { for (const m of c.members) this.verified.add(m); },
      async () => {
        for (const m of c.members) kept.delete(m);
        await this.refetch(c.members);
      },
    )));
    // A member with no piece of a file still to write (all its files hard-linked) is not fetched either.
    if (kept.size > 0) this.log('info', 'install.chunked-resume', { members: kept.size, bytes: [...kept].reduce((n, m) => n + this.index.members[m]!.gzLength, 0) }, 'resuming: members verified by an earlier run are used again');
    return { kept, jobs };
  }

  /** Fetches `members` again, after a resumed copy or file failed. */
  private refetch(members: readonly number[]): Promise<void> {
    return this.fetchAll(members);
  }

  /** The journal: the verified members, at most every 250 ms while fetching (a crash loses at most those). */
  private async writeJournal(force: boolean): Promise<void> {
    if (!force && (this.journaling || performance.now() - this.lastJournal < 250)) return;
    while (this.journaling) await this.journaling; // one write at a time: they share the temp file
    this.lastJournal = performance.now();
    this.journaling = writeJournal(this.paths, this.req.sha256, this.verified.ranges(), 'tree').finally(() => { this.journaling = undefined; });
    await this.journaling;
  }

  private journaling: Promise<void> | undefined;

  /**
   * Files against their content hash in the index where their bytes did not
   * all come from members verified in this run (file-checks.ts says why the
   * rest need no second read). A resumed file that fails has its members
   * fetched and is checked once more.
   */
  private async checkFiles(): Promise<void> {
    const empty = sha(new Uint8Array(0));
    for (const op of this.tree.ops) {
      if (op.kind === 'file' && op.size === 0 && op.sha256 !== empty) throw new DigestMismatchError(`Cannot install ${this.req.component}: the empty file ${JSON.stringify(op.path)} has the content hash ${op.sha256} in the index`, { data: { entry: op.path } });
    }
    const { hash } = filesToHash(this.tree, this.plan, this.resumedFiles);
    const check = (op: FileOp) => this.pool.run({ type: 'hash', path: this.abs(op.path), size: op.size, sha256: op.sha256 });
    const results = await Promise.allSettled(hash.map(check));
    const retry = hash.filter((op, i) => results[i]!.status === 'rejected' && this.resumedFiles.has(op.path) && !this.plan.copies.some((c) => c.to.path === op.path));
    const fatal = results.find((r, i) => r.status === 'rejected' && !retry.includes(hash[i]!));
    if (fatal) throw (fatal as PromiseRejectedResult).reason;
    if (retry.length === 0) return;
    const paths = new Set(retry.map((op) => op.path));
    const members = [...this.plan.pieces].filter(([, ps]) => ps.some((p) => paths.has(p.path))).map(([m]) => m).sort((x, y) => x - y);
    this.log('warn', 'install.chunked-resume-failed', { files: retry.length, members: members.length }, 'files resumed from an interrupted run do not match the index; fetching their members again');
    await this.refetch(members);
    const again = await Promise.allSettled(retry.map(check));
    const failed = again.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

