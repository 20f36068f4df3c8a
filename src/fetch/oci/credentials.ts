/**
 * Where registry credentials come from: a token file named in the config
 * (`registries.<host>.tokenFile`: its text is sent as `Bearer`), else
 * docker's `config.json` (`$DOCKER_CONFIG/config.json` or
 * `~/.docker/config.json`), whose `auths.<host>.auth` is base64
 * `user:password`, as `docker login` writes it. Credential helpers
 * (`credsStore`, `credHelpers`) are programs lander does not run.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export type Credential =
  /** Sent as is to the registry: `Authorization: Bearer <token>`. */
  | { kind: 'bearer'; token: string; source: string }
  /** base64 `user:password`: to the token endpoint, or as Basic to a registry that asks for it. */
  | { kind: 'basic'; auth: string; source: string };

/** Looks up what to present to one registry (`host[:port]`). */
export type CredentialLookup = (registry: string) => Promise<Credential | undefined>;

export interface CredentialOptions {
  /** `host[:port]` → absolute path of a token file. */
  tokenFiles?: Record<string, string>;
  /** @default $DOCKER_CONFIG/config.json, else ~/.docker/config.json */
  dockerConfig?: string;
}

/** The docker config.json key that names `registry`: `host`, `https://host`, `http://host/...` all count. */
export function dockerConfigEntry(doc: unknown, registry: string): { auth?: string } | undefined {
  const auths = (doc as { auths?: Record<string, { auth?: unknown }> } | null)?.auths;
  if (!auths || typeof auths !== 'object') return undefined;
  for (const [key, v] of Object.entries(auths)) {
    const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
    const docker = registry === 'docker.io' || registry === 'registry-1.docker.io';
    if (host === registry || (docker && host === 'index.docker.io')) return typeof v?.auth === 'string' ? { auth: v.auth } : {};
  }
  return undefined;
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
    const e = dockerConfigEntry(doc, registry);
    return e?.auth ? { kind: 'basic', auth: e.auth, source: file } : undefined;
  };
}
