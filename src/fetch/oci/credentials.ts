/**
 * Where registry credentials come from, as docker finds them: a token file
 * named in the config (`registries.<host>.tokenFile`: its text is sent as
 * `Bearer`), else docker's `config.json` (`$DOCKER_CONFIG/config.json` or
 * `~/.docker/config.json`): a credential helper for the host
 * (`credHelpers.<host>`, else `credsStore`), run as `docker-credential-<name> get`;
 * without one, `auths.<host>.auth` (base64 `user:password`, as `docker
 * login` writes it) or `auths.<host>.identitytoken` (an OAuth2 refresh
 * token, as a registry's own login flow leaves it).
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runCredentialHelper, type HelperAnswer } from './credential-helper.ts';

export type Credential =
  /** Sent as is to the registry: `Authorization: Bearer <token>`. */
  | { kind: 'bearer'; token: string; source: string }
  /** base64 `user:password`: to the token endpoint, or as Basic to a registry that asks for it. */
  | { kind: 'basic'; auth: string; source: string }
  /** An OAuth2 refresh token: traded at the token endpoint (`grant_type=refresh_token`) for an access token. */
  | { kind: 'identity'; token: string; source: string };

/** Looks up what to present to one registry (`host[:port]`). */
export type CredentialLookup = (registry: string) => Promise<Credential | undefined>;

export interface CredentialOptions {
  /** `host[:port]` → absolute path of a token file. */
  tokenFiles?: Record<string, string>;
  /** @default $DOCKER_CONFIG/config.json, else ~/.docker/config.json */
  dockerConfig?: string;
  /** Runs a credential helper. @default runCredentialHelper */
  helper?: (name: string, server: string) => Promise<HelperAnswer | undefined>;
}

/** What docker's config.json says for one registry. */
export type DockerConfigSource = { helper: string } | { auth: string } | { identityToken: string };

const isDockerHub = (registry: string) => registry === 'docker.io' || registry === 'registry-1.docker.io' || registry === 'index.docker.io';
const hostOf = (key: string) => key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');

/** The docker config.json `auths` entry that names `registry`: `host`, `https://host`, `http://host/...` all count. */
export function dockerConfigEntry(doc: unknown, registry: string): { auth?: string; identitytoken?: string } | undefined {
  const auths = (doc as { auths?: Record<string, { auth?: unknown; identitytoken?: unknown }> } | null)?.auths;
  if (!auths || typeof auths !== 'object') return undefined;
  for (const [key, v] of Object.entries(auths)) {
    const host = hostOf(key);
    if (host === registry || (isDockerHub(registry) && isDockerHub(host))) {
      return { ...(typeof v?.auth === 'string' && v.auth !== '' ? { auth: v.auth } : {}), ...(typeof v?.identitytoken === 'string' && v.identitytoken !== '' ? { identitytoken: v.identitytoken } : {}) };
    }
  }
  return undefined;
}

/**
 * Where docker would take credentials for `registry` from (pure): its
 * `credHelpers` entry, else `credsStore`, else the `auths` entry (an
 * identity token before a user:password, as docker prefers it).
 */
export function dockerConfigSource(doc: unknown, registry: string): DockerConfigSource | undefined {
  const d = (doc ?? {}) as { credHelpers?: Record<string, unknown>; credsStore?: unknown };
  const helpers = d.credHelpers && typeof d.credHelpers === 'object' ? d.credHelpers : {};
  for (const [key, name] of Object.entries(helpers)) {
    const host = hostOf(key);
    if (typeof name === 'string' && name !== '' && (host === registry || (isDockerHub(registry) && isDockerHub(host)))) return { helper: name };
  }
  if (typeof d.credsStore === 'string' && d.credsStore !== '') return { helper: d.credsStore };
  const e = dockerConfigEntry(doc, registry);
  if (e?.identitytoken) return { identityToken: e.identitytoken };
  if (e?.auth) return { auth: e.auth };
  return undefined;
}

/** The server name docker hands a helper: Docker Hub's index URL, else the host as logged in to. */
export function helperServerName(registry: string): string {
  return isDockerHub(registry) ? 'https://index.docker.io/v1/' : registry;
}

/** A helper's answer as a credential: Username `<token>` means the Secret is an identity token. */
export function helperCredential(a: HelperAnswer, source: string): Credential {
  if (a.username === '<token>') return { kind: 'identity', token: a.secret, source };
  return { kind: 'basic', auth: Buffer.from(`${a.username}:${a.secret}`).toString('base64'), source };
}

/** The default lookup: token files first, then docker's config.json; read on each call (a `docker login` takes effect without a restart). */
export function credentialLookup(o: CredentialOptions = {}): CredentialLookup {
  return async (registry) => {
    const tokenFile = o.tokenFiles?.[registry];
    if (tokenFile) {
      const token = (await readFile(tokenFile, 'utf8')).trim();
      if (token === '') throw new Error(`the token file ${tokenFile} for ${registry} is empty`);
      return { kind: 'bearer', token, source: tokenFile };
    }
    const file = o.dockerConfig ?? path.join(process.env.DOCKER_CONFIG ?? path.join(os.homedir(), '.docker'), 'config.json');
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // no docker login on this machine: anonymous
      throw new Error(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    const s = dockerConfigSource(doc, registry);
    if (!s) return undefined;
    if ('auth' in s) return { kind: 'basic', auth: s.auth, source: file };
    if ('identityToken' in s) return { kind: 'identity', token: s.identityToken, source: file };
    const program = `docker-credential-${s.helper}`;
    const answer = await (o.helper ?? runCredentialHelper)(s.helper, helperServerName(registry)).catch((cause: unknown) => {
      throw new Error(`the credential helper named in ${file} failed: ${(cause as Error).message}`, { cause });
    });
    return answer ? helperCredential(answer, program) : undefined;
  };
}
