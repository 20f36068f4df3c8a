/**
 * The on-disk layout under `root` (see DESIGN.md): the lock, `state.json`,
 * resumable downloads, staging folders, read-only store entries, generations
 * and the `current` link. All state changes go through here.
 */
import { chmod, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { StoreError } from '../base/errors.ts';
import { acquireLock, type Lock } from './lock.ts';
import { currentGeneration, loadState, saveState, type AcceptedManifest, type Generation, type Selected, type State, type StoreEntry } from './state.ts';
import { buildGeneration, readSymlink, swapSymlink, type BuildStats } from './generation.ts';
import { fsyncPath, writeFileAtomic } from '../base/atomic-file.ts';
import { mapLimit } from '../base/map-limit.ts';
import { Downloads } from './downloads.ts';
import type { Logger } from '../report/log.ts';
import type { FileRecord } from './file-record.ts';

export interface CommitEntryInput {
  component: string;
  version: string;
  sha256: string;
  source: string;
  stagingDir: string;
  files: FileRecord[];
  archiveBytes: number;
  extractedBytes: number;
  /** The archive's chunk index, kept beside the entry so later installs can reuse its chunks. */
  index?: Buffer;
}

export class Store {
  readonly root: string;
  readonly log: Logger;
  state: State;
  #lock: Lock | undefined;
  #saving: Promise<void> = Promise.resolve();
  readonly downloads: Downloads;

  private constructor(root: string, state: State, lock: Lock | undefined, log: Logger) {
    this.root = root;
    this.state = state;
    this.#lock = lock;
    this.log = log;
    this.downloads = new Downloads(path.join(root, 'downloads'));
  }

  /**
   * Opens (creating) the layout under `root`, takes the lock unless
   * `readOnly`, removes staging left by a crash and loads the state.
   */
  static async open(root: string, log: Logger, opts: { readOnly?: boolean } = {}): Promise<Store> {
    if (!opts.readOnly) {
      for (const d of ['', 'downloads', 'staging', 'store', 'generations']) await mkdir(path.join(root, d), { recursive: true, mode: 0o755 });
    }
    const lock = opts.readOnly ? undefined : await acquireLock(root);
    try {
      const state = await loadState(path.join(root, 'state.json'));
      const store = new Store(root, state, lock, log);
      if (!opts.readOnly) await store.#recover();
      return store;
    } catch (err) {
      await lock?.release();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#lock?.release();
    this.#lock = undefined;
  }

  /** Crash leftovers: staging folders, half-built generations, temp links, and state that points at nothing. */
  async #recover(): Promise<void> {
    const staging = path.join(this.root, 'staging');
    for (const name of await readdir(staging)) {
      await rm(path.join(staging, name), { recursive: true, force: true });
      this.log.info({ event: 'store.cleanup', path: path.join(staging, name) }, 'removed stale staging folder');
    }
    const gens = path.join(this.root, 'generations');
    for (const name of await readdir(gens)) {
      if (name.includes('.tmp-')) await rm(path.join(gens, name), { recursive: true, force: true });
    }
    for (const name of await readdir(this.root)) {
      // Temp files of writeFileAtomic (state.json, server.json) and of the swap.
      if (name.startsWith('current.tmp-') || (name.startsWith('.') && name.endsWith('.tmp'))) await rm(path.join(this.root, name), { force: true });
    }
    // state.json is written after the swap; after a crash in between, `current` is the truth.
    const target = await readSymlink(this.currentLink);
    const id = target ? Number(path.basename(target)) : null;
    if (id !== null && id !== this.state.current && this.state.generations.some((g) => g.id === id)) {
      this.log.warn({ event: 'store.recover', current: id, recorded: this.state.current }, 'state.json behind the current link; following the link');
      this.state.current = id;
      await this.save();
    }
    await this.#removeOrphans(id);
  }

  /**
   * Folders state.json does not know: a generation renamed into place, or a
   * store entry renamed into `store/`, just before a crash kept the state
   * write from recording it; or one half-deleted by a garbage collection
   * (which records first, then deletes). Nothing refers to them; an entry's
   * archive is still in `downloads/` (removed only after the commit), so a
   * later install replays it instead of downloading it again.
   */
  async #removeOrphans(linked: number | null): Promise<void> {
    const known = new Set(this.state.generations.map((g) => String(g.id)));
    if (linked !== null) known.add(String(linked));
    for (const name of await readdir(this.abs('generations'))) {
      if (known.has(name)) continue;
      await rm(this.abs(path.join('generations', name)), { recursive: true, force: true });
      this.log.warn({ event: 'store.cleanup', path: path.posix.join('generations', name) }, 'removed a generation folder that state.json does not record');
    }
    const entries = new Set(this.state.entries.map((e) => e.dir));
    for (const component of await readdir(this.abs('store'))) {
      const dir = path.posix.join('store', component);
      const names = await readdir(this.abs(dir)).catch(() => [] as string[]);
      for (const name of names) {
        const rel = path.posix.join(dir, name);
        const owner = name.endsWith('.files.json') ? rel.slice(0, -'.files.json'.length) : name.endsWith('.index') ? rel.slice(0, -'.index'.length) : rel;
        if (entries.has(owner)) continue;
        const tmp = name.startsWith('.') && name.endsWith('.tmp');
        await rm(this.abs(rel), { recursive: true, force: true });
        if (!tmp) this.log.warn({ event: 'store.cleanup', path: rel }, 'removed a store entry that state.json does not record');
      }
    }
  }

  get currentLink(): string {
    return path.join(this.root, 'current');
  }

  /** Writes state.json; writes are serialized so a later one always carries every earlier change. */
  save(): Promise<void> {
    const next = this.#saving.then(() => saveState(path.join(this.root, 'state.json'), this.state));
    this.#saving = next.catch(() => undefined);
    return next;
  }

  partPath(sha256: string): string {
    return this.downloads.partPath(sha256);
  }

  /** Marks the downloads of `sha256` in use until the returned release is called: `gc` leaves them. */
  useDownload(sha256: string): () => void {
    return this.downloads.use(sha256);
  }

  /** Removes what `downloads/` holds for archives nobody is installing, `keep` does not name and none of `urls` fetched (downloads.ts). */
  pruneDownloads(keep: ReadonlySet<string>, urls?: ReadonlySet<string>): Promise<{ names: string[]; bytes: number }> {
    return this.downloads.prune(keep, urls);
  }

  /** A path for a fresh staging folder; the worker creates it. */
  stagingPath(component: string): string {
    return path.join(this.root, 'staging', `${component}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`);
  }

  abs(rel: string): string {
    return path.join(this.root, rel);
  }

  findEntry(component: string, sha256: string): StoreEntry | undefined {
    return this.state.entries.find((e) => e.component === component && e.sha256 === sha256);
  }

  current(): Generation | undefined {
    return currentGeneration(this.state);
  }

  /**
   * Makes a verified staging folder a read-only store entry: files lose their
   * write bits, the per-file index is written beside it, and the folder is
   * renamed into `store/` in one step.
   */
  async commitEntry(input: CommitEntryInput): Promise<StoreEntry> {
    const rel = path.posix.join('store', input.component, `${input.version}-${input.sha256.slice(0, 8)}`);
    const dest = this.abs(rel);
    const existing = this.findEntry(input.component, input.sha256);
    if (existing) {
      await rm(input.stagingDir, { recursive: true, force: true });
      return existing;
    }
    await mapLimit(input.files.filter((f) => f.type === 'file'), 32, (f) => chmod(path.join(input.stagingDir, f.path), f.mode & ~0o222));
    await mkdir(path.dirname(dest), { recursive: true, mode: 0o755 });
    // A leftover from a crash between rename and state write: same digest, so same content; replace it.
    await rm(dest, { recursive: true, force: true });
    await writeFileAtomic(`${dest}.files.json`, JSON.stringify({ component: input.component, version: input.version, sha256: input.sha256, files: input.files }) + '\n');
    if (input.index) await writeFileAtomic(`${dest}.index`, input.index);
    else await rm(`${dest}.index`, { force: true });
    await rename(input.stagingDir, dest);
    // Durable before visible: the worker flushed the tree's data and folders; this makes the rename itself durable.
    await fsyncPath(path.dirname(dest));
    const entry: StoreEntry = {
      component: input.component,
      version: input.version,
      sha256: input.sha256,
      dir: rel,
      source: input.source,
      archiveBytes: input.archiveBytes,
      extractedBytes: input.extractedBytes,
      files: input.files.length,
      installedAt: new Date().toISOString(),
    };
    this.state.entries = this.state.entries.filter((e) => e.dir !== rel).concat(entry);
    await this.save();
    return entry;
  }

  async entryFiles(entry: Pick<StoreEntry, 'dir'>): Promise<FileRecord[]> {
    try {
      return JSON.parse(await readFile(`${this.abs(entry.dir)}.files.json`, 'utf8')).files as FileRecord[];
    } catch (err) {
      throw new StoreError('ERR_STORE_INDEX', `Cannot read the file index of ${entry.dir}: ${(err as Error).message}`, { cause: err, data: { entry: entry.dir } });
    }
  }

  /** The chunk index kept beside an entry installed from a chunked archive, if any. */
  async entryIndex(entry: Pick<StoreEntry, 'dir'>): Promise<Buffer | undefined> {
    try {
      return await readFile(`${this.abs(entry.dir)}.index`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new StoreError('ERR_STORE_INDEX', `Cannot read the chunk index of ${entry.dir}: ${(err as Error).message}`, { cause: err, data: { entry: entry.dir } });
    }
  }

  /** The generation with exactly these entries under these versions, if one exists and is not bad. */
  findGeneration(selection: readonly Selected[]): Generation | undefined {
    const key = (c: Record<string, { sha256: string; version: string }>) => Object.entries(c).map(([n, v]) => `${n}=${v.sha256}@${v.version}`).sort().join(',');
    const want = key(Object.fromEntries(selection.map((s) => [s.component, { sha256: s.entry.sha256, version: s.version }])));
    return this.state.generations.find((g) => g.status !== 'bad' && key(g.components) === want);
  }

  /**
   * The generation made of exactly `selection`: an existing one, or a new one
   * built now. Callers serialize this with landings, so two builds of the
   * same selection never race.
   */
  async ensureGeneration(selection: readonly Selected[]): Promise<Generation> {
    const existing = this.findGeneration(selection);
    if (existing) return existing;
    const t0 = performance.now();
    const built = await this.createGeneration(selection.map((s) => s.entry), Object.fromEntries(selection.map((s) => [s.component, s.version])));
    this.log.info({ event: 'generation.built', generation: built.generation.id, files: built.stats.files, linked: built.stats.linked, copied: built.stats.copied, durationMs: Math.round(performance.now() - t0) }, 'generation built');
    return built.generation;
  }

  /**
   * Builds a new generation from one entry per component and records it (not
   * yet current); `versions` names the version each component lands as when
   * it is not the entry's own (a republished identical archive).
   */
  async createGeneration(entries: StoreEntry[], versions: Record<string, string> = {}): Promise<{ generation: Generation; stats: BuildStats }> {
    const id = Math.max(0, ...this.state.generations.map((g) => g.id), ...(await this.#generationDirIds())) + 1;
    const dir = path.posix.join('generations', String(id));
    const parts = [];
    for (const e of entries) parts.push({ component: e.component, dir: this.abs(e.dir), files: await this.entryFiles(e) });
    const stats = await buildGeneration(this.abs(dir), parts);
    const generation: Generation = {
      id,
      dir,
      components: Object.fromEntries(entries.map((e) => [e.component, { version: versions[e.component] ?? e.version, sha256: e.sha256, entry: e.dir }])),
      createdAt: new Date().toISOString(),
      status: 'new',
    };
    this.state.generations.push(generation);
    await this.save();
    return { generation, stats };
  }

  async #generationDirIds(): Promise<number[]> {
    const names = await readdir(this.abs('generations'));
    return names.map((n) => Number(n)).filter((n) => Number.isInteger(n));
  }

  /** Points `current` at generation `id` atomically, then records it. */
  async swap(id: number): Promise<void> {
    const g = this.state.generations.find((x) => x.id === id);
    if (!g) throw new StoreError('ERR_NO_GENERATION', `Cannot switch to generation ${id}: it does not exist`, { data: { id } });
    await stat(this.abs(g.dir));
    const from = this.state.current;
    await swapSymlink(this.currentLink, g.dir);
    this.state.current = id;
    await this.save();
    this.log.info({ event: 'generation.swap', from, to: id, components: g.components }, 'current generation switched');
  }

  async setStatus(id: number, status: Generation['status']): Promise<void> {
    const g = this.state.generations.find((x) => x.id === id);
    if (!g || g.status === status) return;
    g.status = status;
    await this.save();
  }

  /** The newest good generation other than the current one: where a rollback goes. */
  previousGood(): Generation | undefined {
    return [...this.state.generations].reverse().find((g) => g.id !== this.state.current && g.status === 'good');
  }

  async markBad(component: string, version: string): Promise<void> {
    const list = (this.state.bad[component] ??= []);
    if (!list.includes(version)) list.push(version);
    await this.save();
  }

  /**
   * Records that `version` from `source` resolved to `entry`'s digest (an
   * identical archive republished), so later plans keep it without the network.
   */
  async recordAlias(entry: StoreEntry, version: string, source: string): Promise<void> {
    const e = this.state.entries.find((x) => x.dir === entry.dir);
    if (!e) return;
    const known = [{ version: e.version, source: e.source }, ...(e.aliases ?? [])];
    if (known.some((k) => k.version === version && k.source === source)) return;
    // Bounded: a long-lived entry republished many times keeps its newest aliases.
    e.aliases = [...(e.aliases ?? []), { version, source }].slice(-16);
    await this.save();
  }

  /** The last signed manifest accepted from `url`, if any. */
  acceptedManifest(url: string): AcceptedManifest | undefined {
    return this.state.signedManifests[url];
  }

  /** Remembers a signed manifest's sequence, so an older one is refused as a replay even after a restart. */
  async acceptManifest(url: string, rec: AcceptedManifest): Promise<void> {
    this.state.signedManifests[url] = rec;
    await this.save();
  }

  /** Whether `version` of `component` failed on the server before (and is not retried until unmarked). */
  isBad(component: string, version: string): boolean {
    return this.state.bad[component]?.includes(version) ?? false;
  }

  /** Clears the bad mark of `version` (the operator's `lander unmark`); false when it was not marked. */
  async unmarkBad(component: string, version: string): Promise<boolean> {
    const list = this.state.bad[component];
    if (!list?.includes(version)) return false;
    const rest = list.filter((v) => v !== version);
    if (rest.length > 0) this.state.bad[component] = rest;
    else delete this.state.bad[component];
    await this.save();
    return true;
  }

  /**
   * Keeps the current generation, the newest good one before it, and the
   * newest others up to `keep` in all; removes the rest and every store
   * entry no kept generation uses (except `protect`, wanted by a plan);
   * with `downloads`, also what `pruneDownloads` finds unwanted.
   */
  async gc(keep: number, protect: StoreEntry[] = [], downloads?: { keep: ReadonlySet<string>; urls?: ReadonlySet<string> }): Promise<{ generations: number[]; entries: string[]; downloads: string[] }> {
    const byNewest = [...this.state.generations].sort((a, b) => b.id - a.id);
    const kept = new Set<number>();
    if (this.state.current !== null) kept.add(this.state.current);
    const prev = this.previousGood();
    if (prev) kept.add(prev.id);
    for (const g of byNewest) if (kept.size < keep) kept.add(g.id);
    const dropGens = this.state.generations.filter((g) => !kept.has(g.id));
    this.state.generations = this.state.generations.filter((g) => kept.has(g.id));
    const used = new Set([...this.state.generations.flatMap((g) => Object.values(g.components).map((c) => c.entry)), ...protect.map((e) => e.dir)]);
    const dropEntries = this.state.entries.filter((e) => !used.has(e.dir));
    this.state.entries = this.state.entries.filter((e) => used.has(e.dir));
    // Record first: a crash mid-delete leaves unreferenced folders, never references to deleted ones.
    await this.save();
    for (const g of dropGens) await rm(this.abs(g.dir), { recursive: true, force: true });
    for (const e of dropEntries) {
      await rm(this.abs(e.dir), { recursive: true, force: true });
      await rm(`${this.abs(e.dir)}.files.json`, { force: true });
      await rm(`${this.abs(e.dir)}.index`, { force: true });
    }
    const pruned = downloads ? await this.pruneDownloads(downloads.keep, downloads.urls) : { names: [], bytes: 0 };
    if (dropGens.length || dropEntries.length || pruned.names.length) {
      this.log.info({
        event: 'store.gc', generations: dropGens.map((g) => g.id), entries: dropEntries.map((e) => e.dir), downloads: pruned.names, downloadBytes: pruned.bytes,
      }, 'removed old generations, entries and downloads');
    }
    return { generations: dropGens.map((g) => g.id), entries: dropEntries.map((e) => e.dir), downloads: pruned.names };
  }
}

