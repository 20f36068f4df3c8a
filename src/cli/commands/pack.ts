/**
 * `lander pack <onedir> --out <dir>`: splits a one-folder build into
 * component archives by rules, writes them reproducibly in worker threads,
 * then the sidecars, voicebox's `cuda-libs.json` and lander's manifest
 * (signed with `--key`). Archives are written under temp names and renamed
 * only when every one succeeded, so a failed pack never leaves a release
 * that looks complete.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../../base/atomic-file.ts';
import { COMPONENT_NAME, VERSION_PATTERN } from '../../config/schema.ts';
import { LanderError, PackError } from '../../base/errors.ts';
import { createLogger, type Logger } from '../../report/log.ts';
import { mapLimit } from '../../base/map-limit.ts';
import { formatSignature, landerTrustedComment, parseSecretKey, signMessage } from '../../config/minisign.ts';
import { packMtime } from '../../pack/pack-dir.ts';
import { runPackWorker } from '../../pack/worker-client.ts';
import { cudaLibsJson, indexSidecarText, landerManifest, sidecarText, type PackedComponent } from '../../pack/outputs.ts';
import { planPack } from '../../pack/plan.ts';
import { NVIDIA_RULE_SET, componentNames, componentOutput, parseRuleSet, type RuleSet } from '../../pack/rules.ts';
import { walkSource } from '../../pack/walk.ts';
import { ProgressBars } from '../progress-bar.ts';
import { formatBytes } from '../../base/units.ts';

export const PACK_HELP = `lander pack: split a one-folder build into component archives and a manifest

Usage:
  lander pack <onedir> --out <dir> [--rules FILE] [--component-version NAME=VER ...]
              [--base-url URL] [--key FILE] [--sequence N] [--torch-compat SPEC] [--level 1-9]
              [--chunk-size KIB | --single-member] [--json]

  --rules FILE               JSON rules (README "Publishing with lander pack"); default: the
                             built-in nvidia set (server + cuda-libs, as voicebox's package_cuda.py)
  --component-version N=V    version of component N (every component needs one)
  --base-url URL             absolute archive URLs in manifest.json (default: relative to it)
  --key FILE                 sign manifest.json with this unencrypted minisign secret key
  --sequence N               release counter in manifest.json (default with --key: SOURCE_DATE_EPOCH or now)
  --torch-compat SPEC        "torch_compat" in cuda-libs.json
  --level N                  gzip level (default 6)
  --chunk-size KIB           average chunk (gzip member) size of the chunked archive, a power
                             of two (default 8; half that inside files under 1 MiB, four times it inside
                             files of 64 MiB or more); each archive gets a chunk index NAME.index
  --single-member            one gzip member and no index (the archive format before chunking)
SOURCE_DATE_EPOCH sets the mtime of every entry (default 2020-01-01).
`;

/**
 * Average chunk of `lander pack`'s archives, in KiB. 16 rather than BGZF's 64: a delta costs
 * about one member per changed region, and bench/delta.ts measured the bytes of both bumps
 * (see bench/RESULTS.md); the archive stays within 3% of gzip -6 (test/e2e/chunked-archive.test.ts).
 */
export const DEFAULT_CHUNK_KIB = 8;

/** The manifest's file name; also the `file:` in its signature's trusted comment. */
export const MANIFEST_NAME = 'manifest.json';

export interface PackCommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  /** @default JSON lines on stdout at --log-level (warn at a terminal) */
  log?: Logger;
  signal?: AbortSignal;
}

const usage = (message: string) => new PackError('ERR_PACK_USAGE', message);

export async function packCommand(argv: string[], io: PackCommandIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        out: { type: 'string', short: 'o' },
        rules: { type: 'string' },
        'component-version': { type: 'string', multiple: true, default: [] },
        'base-url': { type: 'string' },
        key: { type: 'string' },
        sequence: { type: 'string' },
        'torch-compat': { type: 'string' },
        level: { type: 'string' },
        'chunk-size': { type: 'string' },
        'single-member': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    io.stderr.write(`lander pack: ${(err as Error).message}\n\n${PACK_HELP}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help) {
    io.stdout.write(PACK_HELP);
    return 0;
  }
  const level = v['log-level'] ?? (io.stderr.isTTY && !v.json ? 'warn' : undefined);
  const log = io.log ?? createLogger(level ? { level } : {});
  try {
    if (positionals.length !== 1) throw usage(`Cannot pack: expected one folder, got ${positionals.length}`);
    if (!v.out) throw usage('Cannot pack: --out <dir> is required');
    const gzipLevel = v.level === undefined ? 6 : Number(v.level);
    if (!Number.isInteger(gzipLevel) || gzipLevel < 1 || gzipLevel > 9) throw usage(`Cannot pack: expected --level 1-9, got ${JSON.stringify(v.level)}`);
    if (v['base-url'] !== undefined && !/^https?:\/\//.test(v['base-url'])) throw usage(`Cannot pack: expected --base-url to be an http(s) URL, got ${JSON.stringify(v['base-url'])}`);
    if (v.sequence !== undefined && !/^\d{1,15}$/.test(v.sequence)) throw usage(`Cannot pack: expected --sequence to be a whole number, got ${JSON.stringify(v.sequence)}`);
    const chunkKiB = v['chunk-size'] === undefined ? DEFAULT_CHUNK_KIB : Number(v['chunk-size']);
    if (!Number.isInteger(Math.log2(chunkKiB)) || chunkKiB < 1 || chunkKiB > 16384) throw usage(`Cannot pack: expected --chunk-size to be a power of two from 1 to 16384 (KiB), got ${JSON.stringify(v['chunk-size'])}`);
    if (v['single-member'] && v['chunk-size'] !== undefined) throw usage('Cannot pack: --chunk-size and --single-member exclude each other');
    const rs = v.rules ? parseRuleSet(await readFile(v.rules, 'utf8'), v.rules) : NVIDIA_RULE_SET;
    await pack({
      source: positionals[0]!, out: v.out, rs, level: gzipLevel, ...(v['single-member'] ? {} : { avgChunk: chunkKiB * 1024 }), versions: parseVersions(v['component-version'] as string[], rs),
      ...(v['base-url'] !== undefined ? { baseUrl: v['base-url'] } : {}),
      ...(v.key !== undefined ? { key: v.key } : {}),
      ...(v.sequence !== undefined ? { sequence: Number(v.sequence) } : {}),
      ...(v['torch-compat'] !== undefined ? { torchCompat: v['torch-compat'] } : {}),
    }, { ...io, log }, v.json);
    return 0;
  } catch (err) {
    const code = err instanceof LanderError ? err.code : 'ERR_UNEXPECTED';
    log.error({ event: 'pack.failed', code, err }, (err as Error).message);
    io.stderr.write(`lander pack: ${(err as Error).message}\n`);
    return code === 'ERR_PACK_USAGE' || code === 'ERR_PACK_RULES' ? 2 : 1;
  } finally {
    log.flush?.();
  }
}

/** `--component-version` values over the rules file's versions; every component must end up with one. */
function parseVersions(args: string[], rs: RuleSet): Map<string, string> {
  const names = componentNames(rs);
  const out = new Map(names.flatMap((n) => (rs.components[n]?.version ? [[n, rs.components[n].version] as const] : [])));
  for (const a of args) {
    const m = /^([^=]+)=(.*)$/.exec(a);
    if (!m || !COMPONENT_NAME.test(m[1]!) || !VERSION_PATTERN.test(m[2]!)) throw usage(`Cannot pack: expected --component-version NAME=VERSION (version of letters, digits and . _ + -), got ${JSON.stringify(a)}`);
    if (!names.includes(m[1]!)) throw usage(`Cannot pack: --component-version names ${JSON.stringify(m[1])}, which is not a component of the rules (${names.join(', ')})`);
    out.set(m[1]!, m[2]!);
  }
  const missing = names.filter((n) => !out.has(n));
  if (missing.length > 0) throw usage(`Cannot pack: no version for ${missing.join(', ')}; pass ${missing.map((n) => `--component-version ${n}=VERSION`).join(' ')}`);
  return out;
}

interface PackJob {
  source: string;
  out: string;
  rs: RuleSet;
  level: number;
  /** Average chunk size; absent: one gzip member, no index. */
  avgChunk?: number;
  versions: Map<string, string>;
  baseUrl?: string;
  key?: string;
  sequence?: number;
  torchCompat?: string;
}

async function pack(job: PackJob, io: PackCommandIo & { log: Logger }, json: boolean): Promise<void> {
  const { log } = io;
  const started = performance.now();
  const source = await realpath(job.source).catch((cause: unknown) => {
    throw usage(`Cannot pack ${job.source}: ${(cause as Error).message}`);
  });
  if (!(await stat(source)).isDirectory()) throw usage(`Cannot pack ${job.source}: it is not a folder`);
  await mkdir(job.out, { recursive: true });
  const out = await realpath(job.out);
  if (out === source || out.startsWith(`${source}${path.sep}`)) throw usage(`Cannot pack ${job.source}: the output folder ${job.out} is inside it`);

  const names = componentNames(job.rs);
  const assets = new Map(names.map((n) => [n, componentOutput(job.rs, n).asset.replaceAll('{version}', job.versions.get(n)!)]));
  const taken = new Set([MANIFEST_NAME, 'cuda-libs.json']);
  for (const [n, a] of assets) {
    if (taken.has(a) || taken.has(`${a}.index`) || !a.endsWith('.tar.gz')) throw usage(`Cannot pack: component ${n}'s archive name ${JSON.stringify(a)} is used twice or does not end in .tar.gz`);
    taken.add(a);
    taken.add(`${a}.index`);
  }

  const entries = await walkSource(source);
  const plans = planPack(entries, job.rs);
  const mtime = Math.floor(packMtime().getTime() / 1000);
  log.info({ event: 'pack.planned', source, components: Object.fromEntries(plans.map((p) => [p.name, { entries: p.entries.length, bytes: p.bytes }])) }, 'split planned');

  const bars = io.stderr.isTTY && !json ? new ProgressBars(io.stderr) : undefined;
  const ac = new AbortController();
  const onOuterAbort = () => ac.abort(io.signal!.reason);
  io.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const temps = new Map<string, string>();
  const results = new Map<string, PackedComponent>();
  try {
    // Two at a time: gzip is CPU-bound, and a voicebox release has two components.
    await mapLimit(plans, 2, async (p) => {
      const tmp = path.join(out, `.${assets.get(p.name)!}.${randomBytes(4).toString('hex')}.tmp`);
      temps.set(p.name, tmp);
      const indexTmp = `${tmp}.index`;
      if (job.avgChunk) temps.set(`${p.name}\0index`, indexTmp);
      const done = await runPackWorker(
        { type: 'pack', component: p.name, sourceDir: source, entries: p.entries, outFile: tmp, level: job.level, mtime, ...(job.avgChunk ? { chunked: { indexFile: indexTmp, avgChunk: job.avgChunk } } : {}) },
        { signal: ac.signal, onProgress: (e) => bars?.update(p.name, { label: p.name, bytes: e.bytes, total: p.bytes, rate: 0 }) },
      ).catch((err: unknown) => {
        ac.abort(err);
        throw err;
      });
      bars?.update(p.name, { label: p.name, bytes: p.bytes, total: p.bytes, rate: 0 }, true);
      const asset = assets.get(p.name)!;
      results.set(p.name, { name: p.name, version: job.versions.get(p.name)!, asset, sha256: done.sha256, size: done.size, ...(done.index ? { index: { asset: `${asset}.index`, sha256: done.index.sha256, size: done.index.size } } : {}) });
      log.info({ event: 'pack.archive', component: p.name, asset, sha256: done.sha256, size: done.size, entries: done.entries, ...(done.index ? { members: done.index.members, indexBytes: done.index.size } : {}) }, 'archive written');
    });
    for (const p of plans) {
      await rename(temps.get(p.name)!, path.join(out, assets.get(p.name)!));
      const idx = temps.get(`${p.name}\0index`);
      if (idx) await rename(idx, path.join(out, `${assets.get(p.name)!}.index`));
    }
  } catch (err) {
    await Promise.all([...temps.values()].map((t) => rm(t, { force: true })));
    throw err;
  } finally {
    io.signal?.removeEventListener('abort', onOuterAbort);
  }

  const packed = plans.map((p) => results.get(p.name)!);
  for (const c of packed) {
    await writeFileAtomic(path.join(out, `${c.asset}.sha256`), sidecarText(c));
    const idx = indexSidecarText(c);
    if (idx) await writeFileAtomic(path.join(out, `${c.index!.asset}.sha256`), idx);
  }
  const cuda = packed.find((c) => c.name === 'cuda-libs');
  if (cuda) await writeFileAtomic(path.join(out, 'cuda-libs.json'), cudaLibsJson(cuda, job.torchCompat));
  // A signed manifest needs a sequence (src/manifest-signature.ts): a time is monotonic without bookkeeping.
  const sequence = job.sequence ?? (job.key ? (Number(process.env.SOURCE_DATE_EPOCH) > 0 ? mtime : Math.floor(Date.now() / 1000)) : undefined);
  const manifest = landerManifest(packed, { ...(job.baseUrl ? { baseUrl: job.baseUrl } : {}), ...(sequence !== undefined ? { sequence } : {}) });
  await writeFileAtomic(path.join(out, MANIFEST_NAME), manifest);
  const signedAt = Number(process.env.SOURCE_DATE_EPOCH) > 0 ? mtime * 1000 : Date.now();
  if (job.key) await writeFileAtomic(path.join(out, `${MANIFEST_NAME}.minisig`), await signManifest(manifest, job.key, sequence!, signedAt));

  const summary = { out, components: packed, manifest: MANIFEST_NAME, signed: job.key !== undefined, durationMs: Math.round(performance.now() - started), maxRssBytes: maxRss() };
  log.info({ event: 'pack.done', ...summary }, 'release written');
  if (json) io.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    for (const c of packed) io.stdout.write(`${c.name.padEnd(12)} ${c.version.padEnd(14)} ${formatBytes(c.size).padStart(10)}  ${c.asset}  sha256 ${c.sha256}\n`);
    io.stdout.write(`${MANIFEST_NAME}${job.key ? ' (signed)' : ''}${cuda ? ', cuda-libs.json' : ''} in ${out}\n`);
  }
}

/**
 * The manifest's minisign signature (src/minisign.ts, the format `lander
 * sign` and `minisign -V` use). The trusted comment carries the file name
 * and sequence that src/manifest-signature.ts checks; with SOURCE_DATE_EPOCH
 * its timestamp is that, so equal input signs to equal bytes (Ed25519 is deterministic).
 */
async function signManifest(manifest: string, keyFile: string, sequence: number, timestamp: number): Promise<string> {
  const key = parseSecretKey(await readFile(keyFile, 'utf8'));
  const sig = signMessage(Buffer.from(manifest), key, { trustedComment: landerTrustedComment({ timestamp, file: MANIFEST_NAME, sequence }) });
  return formatSignature(sig);
}

/** Peak resident memory of this process (workers included), where the runtime can tell. */
function maxRss(): number | undefined {
  try {
    return process.resourceUsage().maxRSS * 1024;
  } catch {
    return undefined; // not every runtime implements resourceUsage; the summary simply omits it
  }
}
