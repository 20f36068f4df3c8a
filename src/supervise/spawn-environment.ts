/**
 * Whether a failed server start is a verdict on the release or on the
 * machine. A release whose server cannot start is rolled back and its
 * versions marked bad; but a start that fails for the environment's reasons
 * (a runtime permission not granted, a system interpreter missing, a
 * permission the service user lacks, the port already taken before the
 * spawn) says nothing about the release: it is reported as such
 * (`ERR_SERVER_ENVIRONMENT`) and marks nothing bad, so the same versions
 * start once the environment is fixed.
 */
import net from 'node:net';
import { hasCode, ServerError } from '../base/errors.ts';
import { runtimePermissionError } from '../base/runtime-permission.ts';

/** Deno's permission errors (`NotCapable`, `PermissionDenied`: "Requires run access to ..."). */
export function isRuntimePermissionError(err: unknown): boolean {
  return runtimePermissionError(err) !== undefined;
}

const ENVIRONMENT_ERRNOS = new Set(['EACCES', 'EPERM', 'EAGAIN', 'EMFILE', 'ENFILE', 'ENOMEM']);

/**
 * Classifies a start failure. `insideRelease` says whether the command lives
 * in the generation folder (a missing or non-executable file there is the
 * release's fault; a missing /usr/bin/python3 is the machine's).
 * Returns the environment error to report instead, or undefined (a verdict on the release).
 */
export function environmentFailure(err: unknown, o: { command: string; insideRelease: boolean }): ServerError | undefined {
  const errno = findErrno(err);
  let why: string | undefined;
  if (isRuntimePermissionError(err)) why = `the runtime denied it (${firstMessage(err)}); grant the permission (under Deno: --allow-run) and restart lander`;
  // A file of the release that may not be run lost its mode bit in the archive: the release's fault.
  else if (errno && ENVIRONMENT_ERRNOS.has(errno) && !(errno === 'EACCES' && o.insideRelease)) why = `the system refused it (${errno})`;
  else if (errno === 'ENOENT' && (err as { data?: { stage?: unknown } }).data?.stage === 'spawn') why = 'its interpreter (the #! line) is not installed on this machine';
  else if (errno === 'ENOENT' && !o.insideRelease) why = `${o.command} is not installed on this machine`;
  else if (hasCode(err, 'ERR_SERVER_EXITED')) {
    const code = (err as { data?: { code?: unknown } }).data?.code;
    // 127: the shell or `env` found no interpreter for the script; 126: found, but not allowed to run it.
    if (code === 127) why = 'its interpreter (the #! line) or a program it needs is not installed (exit 127)';
    else if (code === 126) why = 'the system would not run it (exit 126: permission denied)';
  }
  if (!why) return undefined;
  return new ServerError('ERR_SERVER_ENVIRONMENT', `Cannot start the server: ${why}. This is not a fault of the release: no version is marked bad`, { cause: err, data: { command: o.command, ...(errno ? { errno } : {}) } });
}

function findErrno(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && i < 10; e = (e as { cause?: unknown }).cause, i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string' && /^E[A-Z]+$/.test(c)) return c;
  }
  return undefined;
}

function firstMessage(err: unknown): string {
  for (let e: unknown = err, i = 0; e && i < 10; e = (e as { cause?: unknown }).cause, i++) {
    const m = String((e as Error).message ?? '');
    if (/^Requires \w+ access/.test(m)) return m.replace(/, run again with.*$/, '');
  }
  return (err as Error).message;
}

/**
 * Whether something already accepts connections on the health URL's port
 * before the server is spawned: the new server could not bind it, and its
 * failure would be the other program's doing. Loopback only; bounded.
 */
export function portTaken(url: string, timeoutMs = 500): Promise<boolean> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.resolve(false);
  }
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (taken: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(taken);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Throws ERR_SERVER_ENVIRONMENT when another program holds the health URL's port before the spawn. */
export async function refuseTakenPort(url: string | undefined): Promise<void> {
  if (!url || !(await portTaken(url))) return;
  throw new ServerError('ERR_SERVER_ENVIRONMENT', `Cannot start the server: another program already listens on the port of ${url}. This is not a fault of the release: no version is marked bad`, { data: { url } });
}

/** Logs an environment failure once (`server.environment`) and returns it, for the caller's record of errors. */
export function reportEnvironmentFailure(log: { error(o: object, msg: string): void }, generation: number, err: unknown): unknown {
  log.error({ event: 'server.environment', generation, code: 'ERR_SERVER_ENVIRONMENT', err }, (err as Error).message);
  return err;
}
