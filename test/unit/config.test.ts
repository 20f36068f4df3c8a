import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig, validateConfig, type Config } from '../../src/config/schema.ts';
import { desiredSpecs } from '../../src/plan/desired.ts';

const configSpecs = (c: Config) => desiredSpecs(c).specs;
import { ConfigError } from '../../src/base/errors.ts';

const example = readFileSync(new URL('../../config.example.json', import.meta.url), 'utf8');

function issuesOf(value: unknown): { path: string; message: string }[] {
  try {
    validateConfig(value);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).data.issues as { path: string; message: string }[];
  }
  throw new Error('expected a ConfigError');
}

const base = () => JSON.parse(example);

describe('config', () => {
  it('parses config.example.json with the voicebox URLs expanded and defaults filled', () => {
    const specs = (c: Config) => Object.fromEntries(configSpecs(c).map((s) => [s.name, s]));
    const c = parseConfig(example);
    expect(specs(c).server!.restart).toBe(true);
    expect(specs(c).server!.urls).toEqual(['https://github.com/jamiepine/voicebox/releases/download/v0.3.1/voicebox-server-cuda.tar.gz']);
    expect(specs(c).server!.sha256Url).toBe('https://github.com/jamiepine/voicebox/releases/download/v0.3.1/voicebox-server-cuda.tar.gz.sha256');
    expect(specs(c)['cuda-libs']!.urls[0]).toBe('https://github.com/jamiepine/voicebox/releases/download/v0.3.1/cuda-libs-cu128-v1.tar.gz');
    expect(c.keepGenerations).toBe(3);
    expect(c.download).toMatchObject({ concurrency: 2, retries: 5, idleTimeout: 30_000 });
    expect(c.server!.health!.timeout).toBe(120_000);
    expect(c.server!.stop).toEqual({ signal: 'SIGTERM', timeout: 10_000 });
  });

  it('names the JSON syntax error', () => {
    expect(() => parseConfig('{"root": ', 'lander.json')).toThrow(/Cannot use lander\.json: it is not valid JSON/);
  });

  it('requires a digest source', () => {
    const v = base();
    delete v.components.server.sha256Url;
    expect(issuesOf(v)).toEqual([{ path: 'components.server', message: expect.stringMatching(/one of "sha256" or "sha256Url"/) }]);
  });

  it('refuses both digest sources', () => {
    const v = base();
    v.components.server.sha256 = 'a'.repeat(64);
    expect(issuesOf(v)[0]!.message).toMatch(/only one of/);
  });

  it('names unknown keys, bad types, bad schemes and relative roots by path', () => {
    const v = base();
    v.root = 'var/lib/lander';
    v.components.server.verison = '1';
    v.components['cuda-libs'].url = 'ftp://example.com/x.tar.gz';
    v.keepGenerations = '3';
    const paths = issuesOf(v).map((i) => i.path).sort();
    expect(paths).toEqual(['components.cuda-libs.url', 'components.server', 'keepGenerations', 'root']);
  });

  it('rejects a pinned digest that is not 64 hex digits', () => {
    const v = base();
    delete v.components.server.sha256Url;
    v.components.server.sha256 = 'xyz';
    expect(issuesOf(v)).toEqual([{ path: 'components.server.sha256', message: expect.stringMatching(/64 hex/) }]);
  });

  it('parses durations and sizes, and refuses negative ones', () => {
    const v = base();
    v.download = { idleTimeout: '1.5m', connectTimeout: 250 };
    v.components.server.size = '400MiB';
    const c = validateConfig(v);
    expect(c.download.idleTimeout).toBe(90_000);
    expect(c.download.connectTimeout).toBe(250);
    expect(configSpecs(c)[0]!.size).toBe(400 * 1024 * 1024);
    v.download = { idleTimeout: '-5s' };
    expect(issuesOf(v)[0]!.path).toBe('download.idleTimeout');
  });

  it('takes download.keepPart as a boolean, off unless set, and names it when it is not one', () => {
    const v = base();
    expect(validateConfig(v).download.keepPart).toBeUndefined();
    v.download = { keepPart: true };
    expect(validateConfig(v).download.keepPart).toBe(true);
    v.download = { keepPart: 'yes' };
    expect(issuesOf(v).map((i) => i.path)).toEqual(['download.keepPart']);
  });

  it('refuses a server command outside the generation folder', () => {
    const v = base();
    v.server.command = '../../bin/sh';
    expect(issuesOf(v)[0]!.path).toBe('server.command');
  });

  it('accepts mirrors as a list', () => {
    const v = base();
    v.components.server.url = ['http://127.0.0.1:1/a-{version}.tgz', 'http://127.0.0.1:2/a-{version}.tgz'];
    expect(configSpecs(validateConfig(v))[0]!.urls).toEqual(['http://127.0.0.1:1/a-0.3.1.tgz', 'http://127.0.0.1:2/a-0.3.1.tgz']);
  });
});
