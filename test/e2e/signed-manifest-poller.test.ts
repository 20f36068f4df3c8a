/**
 * The manifest poller with `publicKey` against the real loopback server:
 * `<url>.minisig` fetched with its own ETag, the trusted comment checked
 * against the manifest, the persisted sequence floor, expiry.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ManifestConfig } from '../../src/config/schema.ts';
import type { LanderError } from '../../src/base/errors.ts';
import { createLogger } from '../../src/report/log.ts';
import type { ParsedManifest } from '../../src/config/manifest.ts';
import { ManifestPoller, type ManifestFetchInfo, type ManifestPollerOptions } from '../../src/config/manifest-poller.ts';
import { signatureUrl } from '../../src/config/manifest-signature.ts';
import { formatSignature, generateKeyPair, landerTrustedComment, publicKeyLine, signMessage, type MinisignSecretKey } from '../../src/config/minisign.ts';
import { startTestServer, type TestServer } from '../helpers/http-server.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const A = 'a'.repeat(64);
const KEY = generateKeyPair();
const PATH = '/rel/stable.json';

const body = (version: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ schema: 1, ...extra, components: { server: { version, url: `server-${version}.tar.gz`, sha256: A } } });

function sig(text: string, opts: { key?: MinisignSecretKey; comment?: string; sequence?: number; legacy?: boolean } = {}): string {
  // As `lander sign` does: the manifest's own sequence goes into the trusted comment.
  const sequence = opts.sequence ?? (JSON.parse(text) as { sequence?: number }).sequence;
  const trustedComment = opts.comment ?? landerTrustedComment({ timestamp: Date.now(), file: 'stable.json', ...(sequence !== undefined ? { sequence } : {}) });
  return formatSignature(signMessage(Buffer.from(text), opts.key ?? KEY, { trustedComment, legacy: opts.legacy ?? false }));
}

interface Harness {
  srv: TestServer;
  poller: ManifestPoller;
  got: { m: ParsedManifest; info: ManifestFetchInfo }[];
  errors: LanderError[];
  /** Serves a manifest and, unless `signature` is null, its signature. */
  publish(text: string, signature?: string | null): void;
}

async function setup(config: Partial<ManifestConfig> = {}, extra: Partial<ManifestPollerOptions> = {}): Promise<Harness> {
  const srv = await startTestServer();
  cleanups.push(() => srv.close());
  const got: Harness['got'] = [];
  const errors: LanderError[] = [];
  const poller = new ManifestPoller({
    config: { url: srv.url(PATH), format: 'lander', component: 'cuda-libs', interval: 3_600_000, jitter: 0, publicKey: publicKeyLine(KEY), ...config },
    log: createLogger({ level: 'silent' }),
    onManifest: (m, info) => got.push({ m, info }),
    onError: (e) => errors.push(e),
    ...extra,
  });
  cleanups.push(() => poller.stop());
  return {
    srv, poller, got, errors,
    publish(text, signature) {
      srv.serve(PATH, text);
      if (signature !== null) srv.serve(`${PATH}.minisig`, signature ?? sig(text));
    },
  };
}

describe('ManifestPoller with publicKey', () => {
  it('accepts a signed manifest, reports the signer, and reuses the signature by ETag', async () => {
    const h = await setup();
    const t1 = body('1.0.0', { sequence: 1 });
    h.publish(t1);
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.got[0]!.info.signature).toMatchObject({ algorithm: 'ED', trustedComment: expect.stringMatching(/sequence:1$/) });
    expect(h.poller.status()).toMatchObject({ sequence: 1, signedBy: h.got[0]!.info.signature!.keyId });
    expect(await h.poller.pollNow()).toBe('not-modified');
    // An unchanged manifest costs no signature request.
    expect(h.srv.stats(`${PATH}.minisig`).requests).toBe(1);

    // The publisher uploads the new manifest before its signature: the old one answers 304 and fails against the new body.
    const t2 = body('1.1.0', { sequence: 2 });
    h.srv.serve(PATH, t2);
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.srv.stats(`${PATH}.minisig`).notModified).toBe(1);
    expect(h.errors.at(-1)).toMatchObject({ code: 'ERR_SIGNATURE', data: { reason: 'signature' } });
    expect(h.poller.manifest?.components.server!.version).toBe('1.0.0');
    h.srv.serve(`${PATH}.minisig`, sig(t2));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.poller.manifest?.components.server!.version).toBe('1.1.0');
  });

  it('refuses a manifest without a signature, with another key\'s, or with a tampered body', async () => {
    const h = await setup();
    h.publish(body('1.0.0', { sequence: 1 }), null);
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)!.message).toMatch(/stable\.json\.minisig could not be fetched \(HTTP 404\).*every manifest must be signed/);
    h.publish(body('1.0.0', { sequence: 1 }), sig(body('1.0.0', { sequence: 1 }), { key: generateKeyPair() }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)).toMatchObject({ code: 'ERR_SIGNATURE', data: { reason: 'key-id' } });
    h.publish(body('1.0.1', { sequence: 1 }), sig(body('1.0.0', { sequence: 1 })));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)!.message).toMatch(/bad signature: it does not match the file/);
    h.srv.serve(`${PATH}.minisig`, '<html>not found</html>');
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)).toMatchObject({ code: 'ERR_SIGNATURE', data: { reason: 'malformed' } });
    expect(h.got).toEqual([]);
  });

  it('accepts a legacy signature and minisign\'s default trusted comment when the manifest has a sequence', async () => {
    const h = await setup();
    const t = body('1.0.0', { sequence: 4 });
    h.publish(t, sig(t, { legacy: true, comment: 'timestamp:1767225600\tfile:stable.json\thashed' }));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.got[0]!.m.sequence).toBe(4);
  });

  it('checks the trusted comment against the manifest: sequence, file name, a sequence at all', async () => {
    const h = await setup();
    const t = body('1.0.0', { sequence: 4 });
    h.publish(t, sig(t, { comment: 'timestamp:1 file:stable.json sequence:5' }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)!.message).toMatch(/trusted comment says sequence 5, the manifest says 4/);
    h.publish(t, sig(t, { comment: 'timestamp:1 file:beta.json sequence:4' }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)!.message).toMatch(/names the file "beta\.json", but the manifest is "stable\.json"/);
    const noSeq = body('1.0.0');
    h.publish(noSeq, sig(noSeq, { comment: 'timestamp:1 file:stable.json' }));
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)).toMatchObject({ code: 'ERR_MANIFEST', data: { issues: [{ path: 'sequence' }] } });
    // The sequence may come from the (signed) trusted comment alone.
    h.publish(noSeq, sig(noSeq, { comment: 'timestamp:1 file:stable.json sequence:9' }));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.got[0]!.m.sequence).toBe(9);
  });

  it('signs voicebox cuda-libs.json with the sequence in the trusted comment', async () => {
    const h = await setup({ format: 'cuda-libs' });
    const t = JSON.stringify({ version: 'cu128-v1', archive: 'cuda-libs-cu128-v1.tar.gz', sha256: A });
    h.publish(t, sig(t, { sequence: 3 }));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.got[0]!.m).toMatchObject({ format: 'cuda-libs', sequence: 3 });
  });

  it('refuses a sequence below the persisted one, accepts equal and higher', async () => {
    const h = await setup({}, { acceptedSequence: 7 });
    const old = body('1.0.0', { sequence: 6 });
    h.publish(old);
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)!.message).toMatch(/sequence went back from 7 to 6/);
    const same = body('1.1.0', { sequence: 7 });
    h.publish(same);
    expect(await h.poller.pollNow()).toBe('changed');
    h.publish(old);
    expect(await h.poller.pollNow()).toBe('error');
    h.publish(body('1.2.0', { sequence: 8 }));
    expect(await h.poller.pollNow()).toBe('changed');
    expect(h.got.map((g) => g.m.sequence)).toEqual([7, 8]);
  });

  it('refuses an expired signed manifest, and one that expires while the server answers 304', async () => {
    let now = Date.parse('2026-06-01T00:00:00Z');
    const h = await setup({}, { now: () => now });
    const expired = body('1.0.0', { sequence: 1, expires: '2026-05-31T00:00:00Z' });
    h.publish(expired);
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.errors.at(-1)!.message).toMatch(/expired at 2026-05-31T00:00:00Z/);
    const fresh = body('1.0.0', { sequence: 2, expires: '2026-06-02T00:00:00Z' });
    h.publish(fresh);
    expect(await h.poller.pollNow()).toBe('changed');
    now = Date.parse('2026-06-03T00:00:00Z');
    expect(await h.poller.pollNow()).toBe('error');
    expect(h.srv.stats(PATH).notModified).toBe(1);
    expect(h.errors.at(-1)!.message).toMatch(/expired at 2026-06-02T00:00:00Z and the server still serves it/);
  });

  it('puts the signature beside the manifest, keeping a query string', () => {
    expect(signatureUrl('https://h/rel/stable.json?token=x')).toBe('https://h/rel/stable.json.minisig?token=x');
    expect(signatureUrl('file:///srv/rel/stable.json')).toBe('file:///srv/rel/stable.json.minisig');
  });
});
