import { describe, expect, it } from 'vitest';
import { validateConfig, type Config } from '../../src/config/schema.ts';
import { ManifestError } from '../../src/base/errors.ts';
import { parseManifest, type ParsedManifest } from '../../src/config/manifest.ts';
import { desiredSpecs } from '../../src/plan/desired.ts';
import { nextPollDelay } from '../../src/config/manifest-poller.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const BASE = 'https://releases.example/voicebox/v0.3.1/manifest.json';

function issuesOf(fn: () => unknown): { path: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).code).toBe('ERR_MANIFEST');
    return (err as ManifestError).data.issues as { path: string; message: string }[];
  }
  throw new Error('expected a ManifestError');
}

const lander = (v: unknown) => parseManifest(JSON.stringify(v), { format: 'lander', url: BASE, now: Date.parse('2026-01-01T00:00:00Z') });

describe('parseManifest, lander format', () => {
  it('reads components, resolves relative URLs against the manifest URL, keeps absolute ones', () => {
    const m = lander({
      schema: 1,
      sequence: 7,
      expires: '2026-02-01T00:00:00Z',
      components: {
        server: { version: '0.3.2', url: 'voicebox-server-cuda.tar.gz', sha256: A.toUpperCase(), size: 300_000_000, restart: true },
        'cuda-libs': { version: 'cu128-v2', url: ['../v0.3.2/cuda-libs-cu128-v2.tar.gz', 'https://mirror.example/cuda-libs-cu128-v2.tar.gz'], sha256: B },
      },
      future: 'ignored',
    });
    expect(m).toEqual({
      format: 'lander',
      url: BASE,
      sequence: 7,
      expires: '2026-02-01T00:00:00Z',
      components: {
        server: { version: '0.3.2', urls: ['https://releases.example/voicebox/v0.3.1/voicebox-server-cuda.tar.gz'], sha256: A, size: 300_000_000, restart: true },
        'cuda-libs': { version: 'cu128-v2', urls: ['https://releases.example/voicebox/v0.3.2/cuda-libs-cu128-v2.tar.gz', 'https://mirror.example/cuda-libs-cu128-v2.tar.gz'], sha256: B },
      },
    });
  });

  it('names bad fields by path', () => {
    const issues = issuesOf(() => lander({
      schema: 1,
      sequence: -1,
      components: { server: { version: '../x', url: 'a.tar.gz', sha256: 'nothex', size: 'big' }, 'cuda-libs': { version: '1', url: [], sha256: A } },
    }));
    expect(issues.map((i) => i.path).sort()).toEqual([
      'components.cuda-libs.url',
      'components.server.sha256',
      'components.server.size',
      'components.server.version',
      'sequence',
    ]);
  });

  it('names a missing field, a wrong schema and a bad component name', () => {
    expect(issuesOf(() => lander({ schema: 2, components: {} }))).toEqual([{ path: 'schema', message: expect.stringMatching(/schema 1/) }]);
    expect(issuesOf(() => lander({ schema: 1, components: { server: { version: '1', url: 'x' } } }))).toEqual([{ path: 'components.server.sha256', message: expect.any(String) }]);
    expect(issuesOf(() => lander({ schema: 1, components: { '../etc': { version: '1', url: 'x', sha256: A } } }))[0]!.path).toBe('components.../etc');
  });

  it('refuses non-JSON, an expired manifest, and a bad date', () => {
    expect(issuesOf(() => parseManifest('{"schema":', { format: 'lander', url: BASE }))).toEqual([{ path: '(file)', message: expect.stringMatching(/Invalid JSON/) }]);
    expect(issuesOf(() => lander({ schema: 1, expires: '2025-12-31T23:59:59Z', components: {} }))).toEqual([{ path: 'expires', message: expect.stringMatching(/expired/) }]);
    expect(issuesOf(() => lander({ schema: 1, expires: 'next tuesday', components: {} }))[0]!.path).toBe('expires');
  });

  it('refuses a file: URL in a remote manifest and names the mirror by index', () => {
    const issues = issuesOf(() => lander({ schema: 1, components: { server: { version: '1', url: ['a.tar.gz', 'file:///etc/shadow'], sha256: A } } }));
    expect(issues).toEqual([{ path: 'components.server.url[1]', message: expect.stringMatching(/scheme http, https/) }]);
    // A local manifest may name local archives.
    const m = parseManifest(JSON.stringify({ schema: 1, components: { server: { version: '1', url: 'a.tar.gz', sha256: A } } }), { format: 'lander', url: 'file:///srv/rel/manifest.json' });
    expect(m.components.server!.urls).toEqual(['file:///srv/rel/a.tar.gz']);
  });
});

describe('parseManifest, cuda-libs.json', () => {
  const url = 'https://github.com/jamiepine/voicebox/releases/download/v0.3.1/cuda-libs.json';

  it('describes one component, named by the option, archive relative to the manifest', () => {
    const text = JSON.stringify({ version: 'cu128-v1', torch_compat: '2.7', archive: 'cuda-libs-cu128-v1.tar.gz', sha256: A });
    expect(parseManifest(text, { format: 'cuda-libs', url })).toEqual({
      format: 'cuda-libs',
      url,
      components: { 'cuda-libs': { version: 'cu128-v1', urls: ['https://github.com/jamiepine/voicebox/releases/download/v0.3.1/cuda-libs-cu128-v1.tar.gz'], sha256: A } },
    });
    expect(Object.keys(parseManifest(text, { format: 'cuda-libs', url, component: 'cuda' }).components)).toEqual(['cuda']);
  });

  it('names bad fields by path', () => {
    const issues = issuesOf(() => parseManifest(JSON.stringify({ version: 'cu128 v1', sha256: 'short' }), { format: 'cuda-libs', url }));
    expect(issues.map((i) => i.path).sort()).toEqual(['archive', 'sha256', 'version']);
    expect(issuesOf(() => parseManifest(JSON.stringify({ version: '1', archive: 'ftp://x/a.tgz', sha256: A }), { format: 'cuda-libs', url }))).toEqual([{ path: 'archive', message: expect.any(String) }]);
  });
});

/** A config with a manifest section, so components may be incomplete. */
function config(components: Record<string, unknown>): Config {
  return validateConfig({ root: '/var/lib/lander', manifest: { url: BASE }, components });
}

function manifest(components: ParsedManifest['components']): ParsedManifest {
  return { format: 'lander', url: BASE, components };
}

const M = manifest({
  server: { version: '0.3.2', urls: ['https://r.example/server-0.3.2.tar.gz'], sha256: A, size: 1000, restart: false },
  'cuda-libs': { version: 'cu128-v2', urls: ['https://r.example/cuda-libs-cu128-v2.tar.gz'], sha256: B },
});

describe('desiredSpecs', () => {
  it('takes everything from the manifest when the config only names the components', () => {
    const r = desiredSpecs(config({ server: {}, 'cuda-libs': {} }), M);
    expect(r.problems).toEqual([]);
    expect(r.specs).toEqual([
      { name: 'server', version: '0.3.2', urls: ['https://r.example/server-0.3.2.tar.gz'], sha256: A, size: 1000, restart: false },
      { name: 'cuda-libs', version: 'cu128-v2', urls: ['https://r.example/cuda-libs-cu128-v2.tar.gz'], sha256: B, restart: true },
    ]);
  });

  it('installs components the manifest lists and the config does not', () => {
    const r = desiredSpecs(config({ server: {} }), M);
    expect(r.specs.map((s) => s.name)).toEqual(['server', 'cuda-libs']);
  });

  it('lets a config field win over the manifest for the same version', () => {
    const r = desiredSpecs(config({ server: { version: '0.3.2', url: 'https://mirror.example/s-{version}.tar.gz', restart: true, size: '2GiB' } }), M);
    expect(r.specs[0]).toEqual({ name: 'server', version: '0.3.2', urls: ['https://mirror.example/s-0.3.2.tar.gz'], sha256: A, size: 2 * 1024 ** 3, restart: true });
  });

  it('expands the config templates with the manifest version', () => {
    const r = desiredSpecs(config({ server: { url: 'https://mirror.example/v{version}/s.tar.gz', sha256Url: '{url}.sha256' } }), M);
    expect(r.specs[0]).toEqual({ name: 'server', version: '0.3.2', urls: ['https://mirror.example/v0.3.2/s.tar.gz'], sha256Url: 'https://mirror.example/v0.3.2/s.tar.gz.sha256', size: 1000, restart: false });
  });

  it('never uses the manifest URL or digest for a pinned version the manifest does not describe', () => {
    const r = desiredSpecs(config({ server: { version: '0.3.1' } }), M);
    expect(r.specs.map((s) => s.name)).toEqual(['cuda-libs']);
    expect(r.problems).toEqual([{ component: 'server', message: expect.stringMatching(/server 0\.3\.1: no URL.*lists 0\.3\.2/) }]);
    // A URL alone is not enough: the digest belongs to 0.3.2 too.
    const r2 = desiredSpecs(config({ server: { version: '0.3.1', url: 'https://r.example/server-{version}.tar.gz' } }), M);
    expect(r2.problems).toEqual([{ component: 'server', message: expect.stringMatching(/server 0\.3\.1: no digest.*lists 0\.3\.2/) }]);
  });

  it('installs a pinned other version when the config has its own URL template and digest source', () => {
    const r = desiredSpecs(config({ server: { version: '0.3.1', url: 'https://r.example/server-{version}.tar.gz', sha256Url: '{url}.sha256' } }), M);
    expect(r.problems).toEqual([]);
    // Nothing of the manifest's 0.3.2 leaks in: no size, no restart flag.
    expect(r.specs[0]).toEqual({ name: 'server', version: '0.3.1', urls: ['https://r.example/server-0.3.1.tar.gz'], sha256Url: 'https://r.example/server-0.3.1.tar.gz.sha256', restart: true });
    const pinned = desiredSpecs(config({ server: { version: '0.3.1', url: 'https://r.example/s.tar.gz', sha256: C } }), M);
    expect(pinned.specs[0]).toMatchObject({ version: '0.3.1', sha256: C });
  });

  it('reports incomplete components before any manifest arrives, and installs the complete ones', () => {
    const c = config({ server: { version: '0.3.1', url: 'https://r.example/s.tar.gz', sha256: A }, 'cuda-libs': {} });
    const r = desiredSpecs(c);
    expect(r.specs.map((s) => s.name)).toEqual(['server']);
    expect(r.problems).toEqual([{ component: 'cuda-libs', message: expect.stringMatching(/no version and no manifest has been read yet/) }]);
  });

  it('reports a component the manifest does not list', () => {
    const r = desiredSpecs(config({ tts: { url: 'https://r.example/tts.tar.gz' } }), M);
    expect(r.problems).toEqual([{ component: 'tts', message: expect.stringMatching(/manifest does not list it/) }]);
  });

  it('combines a cuda-libs.json manifest with a config that pins the server', () => {
    const m = parseManifest(JSON.stringify({ version: 'cu128-v1', archive: 'cuda-libs-cu128-v1.tar.gz', sha256: B }), { format: 'cuda-libs', url: 'https://gh.example/v0.3.1/cuda-libs.json' });
    const r = desiredSpecs(config({ server: { version: '0.3.1', url: 'https://gh.example/v{version}/server.tar.gz', sha256Url: '{url}.sha256' }, 'cuda-libs': {} }), m);
    expect(r.problems).toEqual([]);
    expect(r.specs.map((s) => [s.name, s.version, s.urls[0]])).toEqual([
      ['server', '0.3.1', 'https://gh.example/v0.3.1/server.tar.gz'],
      ['cuda-libs', 'cu128-v1', 'https://gh.example/v0.3.1/cuda-libs-cu128-v1.tar.gz'],
    ]);
  });
});

describe('nextPollDelay', () => {
  it('offsets the first scheduled poll by a random share of the whole interval, so a fleet started together spreads out', () => {
    const first = (r: number) => nextPollDelay({ intervalMs: 3_600_000, jitter: 0.1, first: true, random: () => r });
    expect(first(0.5)).toBe(1_800_000);
    expect(first(0.999)).toBe(3_596_400);
    expect(first(0)).toBe(1000); // the floor
    // 100 landers: their first polls spread over the interval (deciles all hit), not within 10% of it.
    let seed = 7;
    const lcg = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const deciles = new Set(Array.from({ length: 100 }, () => Math.floor(nextPollDelay({ intervalMs: 3_600_000, jitter: 0.1, first: true, random: lcg }) / 360_000)));
    expect(deciles.size).toBe(10);
    // No jitter asked for: no phase either; and later polls keep interval + jitter.
    expect(nextPollDelay({ intervalMs: 60_000, jitter: 0, first: true, random: () => 0.5 })).toBe(60_000);
    expect(nextPollDelay({ intervalMs: 60_000, jitter: 0.1, first: false, random: () => 0.5 })).toBe(63_000);
  });

  it('stays within [interval, interval * (1 + jitter)]', () => {
    for (const random of [() => 0, () => 0.5, () => 0.999999, Math.random]) {
      const d = nextPollDelay({ intervalMs: 60_000, jitter: 0.1, random });
      expect(d).toBeGreaterThanOrEqual(60_000);
      expect(d).toBeLessThanOrEqual(66_000);
    }
    expect(nextPollDelay({ intervalMs: 60_000, jitter: 0, random: () => 0.9 })).toBe(60_000);
    expect(nextPollDelay({ intervalMs: 60_000, jitter: 0.5, random: () => 0.5 })).toBe(75_000);
  });

  it('retries sooner after failures, with backoff, never later than the interval', () => {
    const top = () => 0.999999;
    expect(nextPollDelay({ intervalMs: 3_600_000, jitter: 0.1, failures: 1, backoffInitialMs: 1000, backoffMaxMs: 30_000, random: top })).toBe(1000);
    expect(nextPollDelay({ intervalMs: 3_600_000, jitter: 0.1, failures: 3, backoffInitialMs: 1000, backoffMaxMs: 30_000, random: top })).toBe(3999);
    expect(nextPollDelay({ intervalMs: 3_600_000, jitter: 0.1, failures: 50, backoffInitialMs: 1000, backoffMaxMs: 30_000, random: top })).toBe(29_999);
    expect(nextPollDelay({ intervalMs: 2000, jitter: 0, failures: 50, backoffInitialMs: 1000, backoffMaxMs: 30_000, random: top })).toBe(2000);
  });

  it('waits at least the initial backoff after a failure, and at least minMs always (a poll loop must not spin)', () => {
    expect(nextPollDelay({ intervalMs: 60_000, jitter: 0, failures: 1, backoffInitialMs: 1000, random: () => 0 })).toBe(1000);
    expect(nextPollDelay({ intervalMs: 0, jitter: 0, random: () => 0 })).toBe(1000);
    expect(nextPollDelay({ intervalMs: 0, jitter: 0, random: () => 0, minMs: 20 })).toBe(20);
  });
});
