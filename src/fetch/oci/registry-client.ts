/**
 * Registry API v2 requests with auth: anonymous first; on a 401 the
 * `WWW-Authenticate` challenge is answered (a bearer token from its realm:
 * a GET with Basic credentials when there are some, or a POST trading an
 * identity token as an OAuth2 refresh token, per the distribution token
 * spec; or Basic itself) and the request is sent once more. Tokens are kept per (registry, scope) for the
 * client's life, which is one resolve or one push.
 */
import { DownloadError } from '../../base/errors.ts';
import { parseChallenges, type Challenge } from './challenge.ts';
import type { Credential, CredentialLookup } from './credentials.ts';
import { defaultSend, type RegistryRequest, type RegistryResponse, type Send } from './send.ts';
import type { OciReference } from './reference.ts';

export interface RegistryClientOptions {
  credentials?: CredentialLookup;
  send?: Send;
  signal?: AbortSignal;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

type Target = Pick<OciReference, 'scheme' | 'registry' | 'repository'>;

/** `repository:<name>:pull` or `:pull,push`. */
export function scopeOf(ref: Target, actions: 'pull' | 'pull,push'): string {
  return `repository:${ref.repository}:${actions}`;
}

export class RegistryClient {
  readonly #o: RegistryClientOptions;
  readonly #send: Send;
  readonly #auth = new Map<string, string>();
  readonly #creds = new Map<string, Promise<Credential | undefined>>();

  constructor(o: RegistryClientOptions = {}) {
    this.#o = o;
    this.#send = o.send ?? defaultSend;
  }

  /**
   * Sends `req` to the registry of `ref` with the Authorization it needs for
   * `scope`, answering one challenge. A 401 after that is returned as is.
   */
  async request(ref: Target, scope: string, req: RegistryRequest): Promise<RegistryResponse> {
    const key = `${ref.registry} ${scope}`;
    const cred = await this.#credential(ref.registry);
    const known = this.#auth.get(key) ?? (cred?.kind === 'bearer' ? `Bearer ${cred.token}` : undefined);
    const res = await this.#sendWith(req, known);
    if (res.status !== 401) return res;
    const header = await this.#answer(ref, scope, res, cred, known);
    this.#auth.set(key, header);
    return this.#sendWith(req, header);
  }

  /**
   * The Authorization header a download of `ref`'s blobs needs, found by
   * pinging `/v2/` and answering its challenge; none for an anonymous registry.
   */
  async authorization(ref: Target, scope: string): Promise<string | undefined> {
    const key = `${ref.registry} ${scope}`;
    if (this.#auth.has(key)) return this.#auth.get(key);
    const cred = await this.#credential(ref.registry);
    const known = cred?.kind === 'bearer' ? `Bearer ${cred.token}` : undefined;
    const res = await this.#sendWith({ method: 'GET', url: `${ref.scheme}://${ref.registry}/v2/`, maxBytes: 64 * 1024 }, known);
    if (res.status !== 401) return known;
    const header = await this.#answer(ref, scope, res, cred, known);
    this.#auth.set(key, header);
    return header;
  }

  #credential(registry: string): Promise<Credential | undefined> {
    let p = this.#creds.get(registry);
    if (!p) {
      p = (this.#o.credentials?.(registry) ?? Promise.resolve(undefined)).catch((cause: unknown) => {
        throw new DownloadError('ERR_REGISTRY_AUTH', `Cannot authenticate to ${registry}: ${(cause as Error).message}`, { cause, data: { registry } });
      });
      this.#creds.set(registry, p);
    }
    return p;
  }

  #sendWith(req: RegistryRequest, authorization: string | undefined): Promise<RegistryResponse> {
    const headers = { ...req.headers, ...(authorization ? { authorization } : {}) };
    return this.#send({
      ...req, headers,
      ...(this.#o.signal && !req.signal ? { signal: this.#o.signal } : {}),
      ...(this.#o.connectTimeoutMs !== undefined ? { connectTimeoutMs: this.#o.connectTimeoutMs } : {}),
      ...(this.#o.idleTimeoutMs !== undefined ? { idleTimeoutMs: this.#o.idleTimeoutMs } : {}),
    });
  }

  async #answer(ref: Target, scope: string, res: RegistryResponse, cred: Credential | undefined, tried: string | undefined): Promise<string> {
    const fail = (why: string, data: Record<string, unknown> = {}) => new DownloadError('ERR_REGISTRY_AUTH', `Cannot authenticate to ${ref.registry} for ${scope}: ${why}`, { data: { registry: ref.registry, scope, ...data } });
    const challenges = parseChallenges(res.headers['www-authenticate'] ?? '');
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer && cred?.kind !== 'bearer') return this.#token(ref, scope, bearer, cred, fail);
    if (basic && cred?.kind === 'basic' && tried !== `Basic ${cred.auth}`) return `Basic ${cred.auth}`;
    if (basic && cred?.kind === 'identity') throw fail(`the registry asks for Basic credentials, but ${cred.source} holds an identity token (for a token service)`, { source: cred.source });
    if (cred?.kind === 'bearer') throw fail(`the registry refused the token from ${cred.source} (HTTP 401)`, { source: cred.source });
    if (challenges.length === 0) throw fail('the registry answered 401 without a WWW-Authenticate challenge');
    throw fail(cred ? `the registry refused the credentials from ${cred.source}` : 'the registry wants credentials; run `docker login` for it (lander reads ~/.docker/config.json) or set "registries" with a "tokenFile" in the config', cred ? { source: cred.source } : {});
  }

  async #token(ref: Target, scope: string, c: Challenge, cred: Credential | undefined, fail: (why: string, data?: Record<string, unknown>) => Error): Promise<string> {
    const realm = c.params.realm;
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw fail(`the challenge's realm ${JSON.stringify(realm)} is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw fail(`the challenge's realm ${realm} is not http(s)`);
    const wanted = c.params.scope ?? scope;
    let res: RegistryResponse;
    if (cred?.kind === 'identity') {
      // OAuth2 (distribution token spec): the identity token is a refresh token, traded by a form POST.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.token, client_id: 'lander', scope: wanted });
      if (c.params.service !== undefined) form.set('service', c.params.service);
      res = await this.#sendWith({ method: 'POST', url: url.href, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), maxBytes: 256 * 1024 }, undefined);
    } else {
      if (c.params.service !== undefined) url.searchParams.set('service', c.params.service);
      url.searchParams.set('scope', wanted);
      res = await this.#sendWith({ method: 'GET', url: url.href, maxBytes: 256 * 1024 }, cred?.kind === 'basic' ? `Basic ${cred.auth}` : undefined);
    }
    if (res.status !== 200) throw fail(`the token service ${url.origin}${url.pathname} answered HTTP ${res.status}${cred ? ` for the credentials from ${cred.source}` : ' (no credentials for it: docker login, or a tokenFile)'}`, { status: res.status });
    let token: unknown;
    try {
      const doc = JSON.parse(res.body.toString('utf8')) as { token?: unknown; access_token?: unknown };
      token = doc.token ?? doc.access_token;
    } catch (cause) {
      throw fail(`the token service's answer is not JSON (${(cause as Error).message})`);
    }
    if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) throw fail('the token service sent no token');
    return `Bearer ${token}`;
  }
}
