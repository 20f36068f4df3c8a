/**
 * The crash campaign: SIGKILL a real `lander install` or `lander run` child at
 * seeded random instants of an update (download and extraction, the move into
 * the store, the generation build, the swap, the state write, the server
 * restart), then check what a power cut would leave: `current` is a complete
 * generation that verifies, and a fresh lander cleans up and finishes the
 * update, resuming the download. Used by test/e2e/crash-campaign.test.ts
 * (50 kills) and, with CRASH_KILLS, for longer runs.
 *
 * The worker thread cannot be killed alone from outside; a kill timed on the
 * `.part` size lands while the worker is mid-write (download, gunzip, tar,
 * staging writes), which is the instant a worker crash would hit.
 */
import { mkdir, readdir, readFile, readlink, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { startLander, parseLogs, type LogRecord } from './lander-cli.ts';
import { makeCoreTree, makeCudaTree, publish, type PublishedAsset } from './release.ts';
import type { TestServer } from './http-server.ts';
import { verifyGeneration } from '../../src/cli/commands/verify.ts';
import { loadState, type State } from '../../src/store/state.ts';
import { silentLogger } from '../../src/report/log.ts';
import { signalChild } from '../../src/base/runtime.ts';
import { prng } from '../../src/base/prng.ts';

export interface CampaignOptions {
  server: TestServer;
  work: string;
  seed: number;
  kills: number;
  /** A free loopback port for the stand-in server. */
  port: number;
  /** Every n-th round kills `lander run` (with the server restart) instead of `lander install`; 0 never. @default 5 */
  runEvery?: number;
  /** Extra `download` settings, e.g. segments over several connections. */
  download?: Record<string, unknown>;
  say?(line: string): void;
}

export interface CampaignResult {
  kills: number;
  rounds: number;
  /** Rounds where the child finished before its kill instant. */
  missed: number;
  inconsistencies: string[];
  bytesDownloadedAgain: number;
  triggers: Record<string, number>;
  /** What the killed lander left on disk, as found by the checks. */
  leftovers: Record<string, number>;
}

interface Release { core: Record<string, PublishedAsset>; cuda: Record<string, PublishedAsset> }
type Target = { core: string; cuda: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function publishCampaignRelease(server: TestServer, work: string): Promise<Release> {
  const rel: Release = { core: {}, cuda: {} };
  for (const v of ['1.0.0', '1.1.0', '1.2.0']) {
    const dir = path.join(work, `src-core-${v}`);
    await makeCoreTree(dir, v, { smallFiles: 150 });
    const a = await publish(server, v, 'voicebox-server-cuda.tar.gz', dir);
    server.serve(a.urlPath, a.body, { rate: 1_000_000 }); // ~0.15 s of download and extraction
    rel.core[v] = a;
  }
  for (const v of ['cu1', 'cu2']) {
    const dir = path.join(work, `src-cuda-${v}`);
    await makeCudaTree(dir, { libBytes: 600 * 1024, libs: 3 });
    const a = await publish(server, 'libs', `cuda-libs-${v}.tar.gz`, dir);
    server.serve(a.urlPath, a.body, { rate: 4_000_000 }); // ~0.45 s
    rel.cuda[v] = a;
  }
  return rel;
}

function config(o: CampaignOptions, root: string, t: Target): string {
  return JSON.stringify({
    root,
    components: {
      server: { version: t.core, url: `${o.server.origin}/download/v{version}/voicebox-server-cuda.tar.gz`, sha256Url: '{url}.sha256' },
      'cuda-libs': { version: t.cuda, url: `${o.server.origin}/download/vlibs/cuda-libs-{version}.tar.gz`, sha256Url: '{url}.sha256' },
    },
    download: { retries: 3, backoffInitial: '20ms', connectTimeout: '2s', idleTimeout: '3s', ...o.download },
    server: {
      command: './voicebox-server-cuda',
      args: ['--port', String(o.port)],
      health: { url: `http://127.0.0.1:${o.port}/health`, json: { status: 'healthy' }, interval: '50ms', timeout: '10s' },
      stop: { timeout: '3s' },
    },
  }, null, 2);
}

async function names(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

async function currentVersions(root: string, state: State): Promise<Target | undefined> {
  const link = await readlink(path.join(root, 'current')).catch(() => undefined);
  if (link === undefined) return undefined;
  const g = state.generations.find((x) => x.id === Number(path.basename(link)));
  if (!g) return undefined;
  return { core: g.components.server?.version ?? '?', cuda: g.components['cuda-libs']?.version ?? '?' };
}

/** Runs the campaign; never throws on an inconsistency, it records it. */
export async function runCrashCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const rand = prng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const rel = await publishCampaignRelease(o.server, o.work);
  const root = path.join(o.work, 'root');
  const configPath = path.join(o.work, 'lander.json');
  await mkdir(root, { recursive: true });
  const res: CampaignResult = { kills: 0, rounds: 0, missed: 0, inconsistencies: [], bytesDownloadedAgain: 0, triggers: {}, leftovers: {} };
  const bad = (round: number, what: string) => {
    res.inconsistencies.push(`round ${round}: ${what}`);
    o.say?.(`INCONSISTENT round ${round}: ${what}`);
  };
  const saveConfig = async (t: Target) => {
    await writeFile(`${configPath}.tmp`, config(o, root, t));
    await rename(`${configPath}.tmp`, configPath);
  };
  const archiveSent = () => [...Object.values(rel.core), ...Object.values(rel.cuda)].reduce((s, a) => s + o.server.stats(a.urlPath).bytesSent, 0);

  // Round 0: a first install, no kill, so there is a `current` to protect.
  let target: Target = { core: '1.0.0', cuda: 'cu1' };
  await saveConfig(target);
  const first = await startLander(['install', '--config', configPath]).finished();
  if (first.code !== 0) throw new Error(`the first install failed: ${first.stderr}`);
  let calibratedMs = 1500;

  for (let round = 1; res.kills < o.kills && round <= o.kills * 3; round++) {
    res.rounds++;
    const every = o.runEvery ?? 5;
    const runMode = every > 0 && round % every === 0;
    // What is current now (a rollback may have kept an older version than the last target).
    const before = (await currentVersions(root, await loadState(path.join(root, 'state.json')))) ?? target;
    do {
      target = { core: rand() < 0.7 ? pick(Object.keys(rel.core)) : before.core, cuda: rand() < 0.5 ? pick(Object.keys(rel.cuda)) : before.cuda };
    } while (target.core === before.core && target.cuda === before.cuda);
    const stateBefore = await loadState(path.join(root, 'state.json'));
    const needed = [rel.core[target.core]!, rel.cuda[target.cuda]!].filter((a) => !stateBefore.entries.some((e) => e.sha256 === a.sha256));
    const sent0 = archiveSent();
    await saveConfig(target);

    // The kill instant: by .part size (worker mid-write), by a log event plus a delay, or by time.
    const kinds = runMode ? ['event', 'event', 'time'] : ['part', 'event', 'time'];
    const kind = pick(kinds);
    const events = runMode ? ['generation.built', 'generation.swap', 'server.state'] : ['download.start', 'install.verified', 'generation.built', 'generation.swap'];
    const event = pick(events);
    const fraction = rand();
    const delay = Math.floor(rand() * (runMode ? 400 : 40));
    const atMs = Math.floor(rand() * calibratedMs);
    const label = kind === 'event' ? `event:${event}` : kind;
    const t0 = performance.now();
    const child = startLander([runMode ? 'run' : 'install', '--config', configPath]);
    const exited = child.finished();
    let done = false;
    void exited.then(() => (done = true));
    const fire = async (): Promise<boolean> => {
      const deadline = performance.now() + 30_000;
      while (!done && performance.now() < deadline) {
        if (kind === 'time' && performance.now() - t0 >= atMs) return true;
        if (kind === 'event' && parseLogs(child.output()).some((r) => r.event === event)) {
          await sleep(delay);
          return !done;
        }
        // A reused generation logs no build: once the landing is over, the instant was missed.
        if (kind === 'event' && parseLogs(child.output()).some((r) => r.event === 'generation.landed')) return false;
        if (kind === 'part') {
          for (const n of await names(path.join(root, 'downloads'))) {
            const a = needed.find((x) => n === `${x.sha256}.part`);
            if (a && (await stat(path.join(root, 'downloads', n)).then((s) => s.size, () => 0)) >= fraction * a.size) return true;
          }
        }
        // An update with nothing to download has no .part to watch: fall back to time.
        if (kind === 'part' && needed.length === 0 && performance.now() - t0 >= atMs) return true;
        await sleep(kind === 'part' ? 2 : 10);
      }
      return false;
    };
    const shouldKill = await fire();
    if (shouldKill && !done) {
      signalChild(child.child, 'SIGKILL');
      res.kills++;
      res.triggers[label] = (res.triggers[label] ?? 0) + 1;
    } else {
      res.missed++;
      if (runMode) signalChild(child.child, 'SIGTERM');
    }
    const r = await exited;
    if (!runMode && r.code === 0) calibratedMs = Math.max(300, Math.round(performance.now() - t0));

    // What a fresh look at the disk finds, before any lander repairs it.
    try {
      const state = await loadState(path.join(root, 'state.json'));
      const cur = await currentVersions(root, state);
      if (!cur) bad(round, '`current` is missing or names a generation state.json does not list');
      else if (!(cur.core === before.core && cur.cuda === before.cuda) && !(cur.core === target.core && cur.cuda === target.cuda)) {
        bad(round, `current holds ${JSON.stringify(cur)}, neither the old ${JSON.stringify(before)} nor the new ${JSON.stringify(target)}`);
      }
      const v = await verifyGeneration(root, silentLogger());
      if (!v.ok) bad(round, `verify after the kill: ${JSON.stringify(v.differences.slice(0, 5))}`);
      await classify(root, state, res.leftovers);
    } catch (err) {
      bad(round, `after the kill: ${(err as Error).message}`);
    }

    // A fresh lander must clean up and finish the update.
    if (runMode) await finishWithRun(o, configPath, root, target, round, bad);
    else {
      const fin = await startLander(['install', '--config', configPath]).finished();
      if (fin.code !== 0) bad(round, `the next install failed (${fin.code}): ${fin.stderr.slice(0, 400)}`);
    }
    await checkFinished(root, target, round, bad);
    const again = archiveSent() - sent0 - needed.reduce((s, a) => s + a.size, 0);
    res.bytesDownloadedAgain += Math.max(0, again);
    o.say?.(`round ${round} ${runMode ? 'run' : 'install'} ${label} -> ${shouldKill ? 'killed' : 'missed'} at ${Math.round(performance.now() - t0)} ms; downloaded again ${Math.max(0, again)} B`);
  }
  await killRecordedServer(root); // a finisher stopped its server; this covers one that could not
  return res;
}

async function finishWithRun(o: CampaignOptions, configPath: string, root: string, target: Target, round: number, bad: (r: number, w: string) => void): Promise<void> {
  const fin = startLander(['run', '--config', configPath]);
  const deadline = performance.now() + 30_000;
  let ok = false;
  while (performance.now() < deadline && fin.child.exitCode === null) {
    const logs: LogRecord[] = parseLogs(fin.output());
    const healthy = logs.some((r) => r.event === 'server.state' && r.to === 'healthy');
    const state = await loadState(path.join(root, 'state.json')).catch(() => undefined);
    const cur = state && (await currentVersions(root, state));
    if (healthy && cur?.core === target.core && cur.cuda === target.cuda && logs.some((r) => r.event === 'generation.landed' || r.event === 'server.state')) {
      // Healthy on the target: wait until the landing is recorded good, then stop gracefully.
      if (state!.generations.find((g) => g.id === state!.current)?.status === 'good') { ok = true; break; }
    }
    await sleep(25);
  }
  signalChild(fin.child, 'SIGTERM');
  const stopped = await Promise.race([fin.finished().then(() => true), sleep(15_000).then(() => false)]);
  if (!stopped) {
    bad(round, `lander run did not stop within 15 s of SIGTERM; log tail: ${fin.output().split('\n').slice(-8).join(' | ').slice(0, 1500)}`);
    signalChild(fin.child, 'SIGKILL');
    await killRecordedServer(root);
  }
  const r = await fin.finished();
  if (!ok) bad(round, `lander run did not land ${JSON.stringify(target)} healthy (exit ${r.code}); log tail: ${r.stdout.split('\n').slice(-6).join(' | ').slice(0, 800)}`);
  void o;
}

/** Stops the server group a killed lander left running (its pid is in server.json). */
async function killRecordedServer(root: string): Promise<void> {
  const rec = await readFile(path.join(root, 'server.json'), 'utf8').then((t) => JSON.parse(t) as { pid: number }, () => undefined);
  if (rec?.pid) {
    try {
      process.kill(-rec.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** After the finishing lander: the target is current and verifies; no staging, no .part, no folder state.json does not know. */
async function checkFinished(root: string, target: Target, round: number, bad: (r: number, w: string) => void): Promise<void> {
  try {
    const state = await loadState(path.join(root, 'state.json'));
    const cur = await currentVersions(root, state);
    if (cur?.core !== target.core || cur.cuda !== target.cuda) bad(round, `after the next lander, current holds ${JSON.stringify(cur)}, not ${JSON.stringify(target)}`);
    const v = await verifyGeneration(root, silentLogger());
    if (!v.ok) bad(round, `verify after the next lander: ${JSON.stringify(v.differences.slice(0, 5))}`);
    const staging = await names(path.join(root, 'staging'));
    if (staging.length) bad(round, `staging not cleaned: ${staging.join(', ')}`);
    const downloads = await names(path.join(root, 'downloads'));
    if (downloads.length) bad(round, `downloads left behind: ${downloads.join(', ')}`);
    const gens = (await names(path.join(root, 'generations'))).join(',');
    const known = state.generations.map((g) => String(g.id)).sort().join(',');
    if (gens !== known) bad(round, `generation folders [${gens}] but state.json lists [${known}]`);
    const storeDirs: string[] = [];
    for (const c of await names(path.join(root, 'store'))) for (const n of await names(path.join(root, 'store', c))) if (!n.endsWith('.files.json')) storeDirs.push(`store/${c}/${n}`);
    const entries = state.entries.map((e) => e.dir).sort();
    if (storeDirs.sort().join(',') !== entries.join(',')) bad(round, `store folders [${storeDirs.join(',')}] but state.json lists [${entries.join(',')}]`);
  } catch (err) {
    bad(round, `after the next lander: ${(err as Error).message}`);
  }
}

/** Tallies what the kill left behind, to show which phases the instants reached. */
async function classify(root: string, state: State, tally: Record<string, number>): Promise<void> {
  const add = (k: string) => (tally[k] = (tally[k] ?? 0) + 1);
  if ((await names(path.join(root, 'downloads'))).some((n) => n.endsWith('.part'))) add('partial or finished download (.part)');
  if ((await names(path.join(root, 'staging'))).length) add('staging folder');
  const gens = await names(path.join(root, 'generations'));
  if (gens.some((n) => n.includes('.tmp-'))) add('half-built generation');
  if (gens.some((n) => !n.includes('.tmp-') && !state.generations.some((g) => String(g.id) === n))) add('generation not in state.json');
  for (const c of await names(path.join(root, 'store'))) {
    for (const n of await names(path.join(root, 'store', c))) {
      if (!n.endsWith('.files.json') && !n.endsWith('.tmp') && !state.entries.some((e) => e.dir === `store/${c}/${n}`)) add('store entry not in state.json');
    }
  }
  const link = await readlink(path.join(root, 'current')).catch(() => undefined);
  if (link && Number(path.basename(link)) !== state.current) add('current link ahead of state.json');
  if ((await names(root)).some((n) => n.startsWith('current.tmp-'))) add('temp link of a swap');
  if (await readFile(path.join(root, 'server.json'), 'utf8').then(() => true, () => false)) add('server left running (server.json)');
}
