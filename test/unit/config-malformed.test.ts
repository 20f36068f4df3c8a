/**
 * Malformed configs, table-driven: each must be refused with the exact field
 * path and a message an operator can act on (HOSTILE-INPUT.md "Config").
 * The running daemon's side (last good config kept) is in test/e2e/daemon.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/base/errors.ts';

const example = readFileSync(new URL('../../config.example.json', import.meta.url), 'utf8');
type Cfg = Record<string, any>;
const edit = (f: (c: Cfg) => void) => {
  const c = JSON.parse(example) as Cfg;
  f(c);
  return JSON.stringify(c);
};

/** [what, config text, field path, message pattern] */
const cases: [string, string, string, RegExp][] = [
  ['syntax error: trailing comma', example.replace(/}\s*$/, ',}'), '(file)', /Invalid JSON/],
  ['syntax error: truncated file', example.slice(0, 40), '(file)', /Invalid JSON/],
  ['empty file', '', '(file)', /Invalid JSON/],
  ['not an object', '[]', '(top level)', /object/i],
  ['unknown top-level key', edit((c) => { c.rooot = '/x'; }), '(top level)', /unknown key "rooot" \(did you mean "root"\?\)/],
  ['root missing', edit((c) => { delete c.root; }), 'root', /expected a string, got nothing/],
  ['root relative', edit((c) => { c.root = 'var/lib/lander'; }), 'root', /absolute path/],
  ['root of the wrong type', edit((c) => { c.root = 42; }), 'root', /expected a string, got the number 42/],
  ['root is the file-system root', edit((c) => { c.root = '/var/..'; }), 'root', /not "\/" itself/],
  ['no components', edit((c) => { c.components = {}; }), 'components', /at least one component/],
  ['component name with a slash', edit((c) => { c.components['../x'] = c.components.server; }), 'components.../x', /component name/],
  ['unknown component key (typo)', edit((c) => { c.components.server.verison = '1'; }), 'components.server', /unknown key "verison" \(did you mean "version"\?\)/],
  ['version of the wrong type', edit((c) => { c.components.server.version = 3; }), 'components.server.version', /expected a string, got the number 3/],
  ['version with a path in it', edit((c) => { c.components.server.version = '../0.3.1'; }), 'components.server.version', /letters, digits/],
  ['url with an ftp scheme', edit((c) => { c.components.server.url = 'ftp://example.com/x.tar.gz'; }), 'components.server.url', /scheme http, https, file, oci or oci\+http, got "ftp"/],
  ['url with a javascript scheme', edit((c) => { c.components.server.url = 'javascript:alert(1)'; }), 'components.server.url', /got "javascript"/],
  ['relative url', edit((c) => { c.components.server.url = 'releases/x.tar.gz'; }), 'components.server.url', /absolute URL/],
  ['empty mirror list', edit((c) => { c.components.server.url = []; }), 'components.server.url', /.+/],
  ['both digest sources', edit((c) => { c.components.server.sha256 = 'a'.repeat(64); }), 'components.server', /only one of "sha256" and "sha256Url"/],
  ['no digest source', edit((c) => { delete c.components.server.sha256Url; }), 'components.server', /never installs an archive it cannot verify/],
  ['sha256 not 64 hex digits', edit((c) => { delete c.components.server.sha256Url; c.components.server.sha256 = 'abc'; }), 'components.server.sha256', /64 hex digits/],
  ['sha256Url with a data: scheme', edit((c) => { c.components.server.sha256Url = 'data:text/plain,aaaa'; }), 'components.server.sha256Url', /got "data"/],
  ['negative size', edit((c) => { c.components.server.size = -1; }), 'components.server.size', /non-negative size/],
  ['absurd size 1e308', edit((c) => { c.components.server.size = 1e308; }), 'components.server.size', /got 1e\+308/],
  ['size in an unknown unit', edit((c) => { c.components.server.size = '5 PB'; }), 'components.server.size', /like "2GiB"/],
  ['negative duration "-5s"', edit((c) => { c.download = { idleTimeout: '-5s' }; }), 'download.idleTimeout', /non-negative duration/],
  ['duration "10 years"', edit((c) => { c.download = { connectTimeout: '10 years' }; }), 'download.connectTimeout', /got "10 years"/],
  ['absurd duration 1e308', edit((c) => { c.download = { backoffMax: 1e308 }; }), 'download.backoffMax', /at most 24 days/],
  ['duration past the longest timer "30d"', edit((c) => { c.server.health.timeout = '30d'; }), 'server.health.timeout', /at most 24 days/],
  ['retries not an integer', edit((c) => { c.download = { retries: 1.5 }; }), 'download.retries', /int/i],
  ['concurrency 0', edit((c) => { c.download = { concurrency: 0 }; }), 'download.concurrency', />=\s*1/],
  ['health probe every 0 ms (a busy loop)', edit((c) => { c.server.health.interval = 0; }), 'server.health.interval', /at least 10ms/],
  ['health.logLine not a regular expression', edit((c) => { c.server.health.logLine = 'ready ('; }), 'server.health.logLine', /regular expression/],
  ['server command outside the generation', edit((c) => { c.server.command = '../../bin/sh'; }), 'server.command', /inside the generation folder/],
  ['server command climbing out midway', edit((c) => { c.server.command = 'bin/../../x'; }), 'server.command', /inside the generation folder/],
  ['empty server command', edit((c) => { c.server.command = ''; }), 'server.command', /.+/],
  ['server env value not a string', edit((c) => { c.server.env = { CUDA_VISIBLE_DEVICES: 0 }; }), 'server.env.CUDA_VISIBLE_DEVICES', /expected a string/],
  ['SIGKILL as the stop signal', edit((c) => { c.server.stop = { signal: 'SIGKILL' }; }), 'server.stop.signal', /SIGTERM/],
  ['idle restarts without idle settings', edit((c) => { c.server.restart = { when: 'idle' }; }), 'server.restart.idle', /"idle" settings/],
  ['backoff factor below 1', edit((c) => { c.server.restart = { factor: 0.5 }; }), 'server.restart.factor', />=\s*1/],
  ['keepGenerations 0', edit((c) => { c.keepGenerations = 0; }), 'keepGenerations', />=\s*1/],
  ['keepGenerations as a string', edit((c) => { c.keepGenerations = '3'; }), 'keepGenerations', /expected a number, got the string "3"/],
  ['api socket relative', edit((c) => { c.api = { socket: 'lander.sock' }; }), 'api.socket', /absolute path/],
  ['api on every interface', edit((c) => { c.api = { tcp: { host: '0.0.0.0', port: 7777, tokenFile: '/etc/lander/token' } }; }), 'api.tcp.host', /127\.0\.0\.1/],
  ['api port out of range', edit((c) => { c.api = { tcp: { port: 70000, tokenFile: '/etc/lander/token' } }; }), 'api.tcp.port', /65535/],
  ['api tcp without a token file', edit((c) => { c.api = { tcp: { port: 7777 } }; }), 'api.tcp.tokenFile', /expected a string/],
  ['manifest url with an ftp scheme', edit((c) => { c.manifest = { url: 'ftp://x/m.json' }; }), 'manifest.url', /got "ftp"/],
  ['manifest format unknown', edit((c) => { c.manifest = { url: 'https://x/m.json', format: 'xml' }; }), 'manifest.format', /lander|cuda-libs/],
  ['manifest polled every 0 s', edit((c) => { c.manifest = { url: 'https://x/m.json', interval: '0s' }; }), 'manifest.interval', /at least 100ms/],
  ['manifest jitter above 1', edit((c) => { c.manifest = { url: 'https://x/m.json', jitter: 2 }; }), 'manifest.jitter', /<=\s*1/],
  ['limits.maxEntries negative', edit((c) => { c.limits = { maxEntries: -1 }; }), 'limits.maxEntries', />\s*0/],
  ['limits.maxEntries 1e308', edit((c) => { c.limits = { maxEntries: 1e308 }; }), 'limits.maxEntries', /.+/],
  ['limits.maxMetaEntrySize past what the tar parser holds', edit((c) => { c.limits = { maxMetaEntrySize: '1TiB' }; }), 'limits.maxMetaEntrySize', /at most 4 MiB/],
  ['limits.maxPathLength past PATH_MAX', edit((c) => { c.limits = { maxPathLength: 100000 }; }), 'limits.maxPathLength', /4096/],
  ['limits.maxExpansionRatio 0', edit((c) => { c.limits = { maxExpansionRatio: 0 }; }), 'limits.maxExpansionRatio', />\s*0/],
  ['log level unknown', edit((c) => { c.log = { level: 'verbose' }; }), 'log.level', /info/],
];

describe('malformed configs: refused with the field path and a clear message', () => {
  it('has at least 30 cases', () => { expect(cases.length).toBeGreaterThanOrEqual(30); });

  it.each(cases)('%s', (_what, text, path, message) => {
    let err: unknown;
    try {
      parseConfig(text, 'lander.json');
    } catch (e) {
      err = e;
    }
    expect(err, 'expected a ConfigError').toBeInstanceOf(ConfigError);
    const issues = (err as ConfigError).data.issues as { path: string; message: string }[];
    const hit = issues.find((i) => i.path === path);
    expect(hit, `no issue at ${path}; got ${JSON.stringify(issues)}`).toBeDefined();
    expect(hit!.message).toMatch(message);
    expect((err as Error).message).toMatch(/^Cannot use lander\.json: /);
  });

  it('still accepts the edges it should: 24 days, 4 MiB of metadata, 4096-byte paths, a system binary', () => {
    const c = parseConfig(edit((x) => {
      x.server.health.timeout = '24d';
      x.server.command = '/usr/bin/python3';
      x.limits = { maxMetaEntrySize: '4MiB', maxPathLength: 4096 };
    }));
    expect(c.server!.health!.timeout).toBe(24 * 86_400_000);
    expect(c.limits.maxMetaEntrySize).toBe(4 * 1024 * 1024);
  });
});
