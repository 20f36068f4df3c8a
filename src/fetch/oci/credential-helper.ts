/**
 * docker's credential helpers, run as docker runs them: `docker-credential-<name> get`
 * with the server name on stdin, `{"ServerURL","Username","Secret"}` on stdout.
 * A helper that has nothing for the server says "credentials not found" and
 * exits non-zero: no credentials, not an error. Bounded: a timeout, a cap
 * on what is read back. What the helper prints is never put in an error
 * message (it may hold the secret).
 */
import { spawn } from 'node:child_process';
import { cleanSpawn, signalChild } from '../../base/runtime.ts';

export interface HelperAnswer {
  username: string;
  secret: string;
}

export interface HelperOptions {
  /** @default 10000 */
  timeoutMs?: number;
}

const MAX_OUTPUT = 64 * 1024;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The helper's answer for `server`, or undefined when it has none. Throws an Error saying what went wrong. */
export function runCredentialHelper(name: string, server: string, o: HelperOptions = {}): Promise<HelperAnswer | undefined> {
  const program = `docker-credential-${name}`;
  if (!NAME.test(name)) return Promise.reject(new Error(`the credential helper name ${JSON.stringify(name)} is not a plain program name`));
  const { file, args } = cleanSpawn(program, ['get']);
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = Buffer.alloc(0);
    let err = '';
    let failed: Error | undefined;
    const timer = setTimeout(() => {
      failed = new Error(`${program} get gave no answer within ${o.timeoutMs ?? 10_000} ms`);
      signalChild(child, 'SIGKILL');
    }, o.timeoutMs ?? 10_000);
    child.stdout!.on('data', (c: Buffer) => {
      if (out.length + c.length > MAX_OUTPUT) {
        failed ??= new Error(`${program} get printed more than ${MAX_OUTPUT} bytes`);
        signalChild(child, 'SIGKILL');
      } else out = Buffer.concat([out, c]);
    });
    child.stderr!.on('data', (c: Buffer) => { if (err.length < 4096) err += c.toString(); });
    child.stdin!.on('error', () => undefined); // a helper that exits without reading stdin: its exit status says what happened
    child.once('error', (e: NodeJS.ErrnoException) => {
      failed ??= e.code === 'ENOENT' ? new Error(`the credential helper ${program} is not on PATH`) : new Error(`cannot run ${program}: ${e.message}`, { cause: e });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      if (failed) return reject(failed);
      const text = out.toString('utf8');
      // 127: the shell found no such program (under Deno the helper starts through bash, see cleanSpawn).
      if (code === 127 && text === '') return reject(new Error(`the credential helper ${program} is not on PATH`));
      if (code !== 0) {
        if (/credentials not found/i.test(text) || /credentials not found/i.test(err)) return resolve(undefined);
        const why = err.trim().split('\n')[0]?.slice(0, 200);
        return reject(new Error(`${program} get exited with code ${code}${why ? ` (${why})` : ''}`));
      }
      let doc: { Username?: unknown; Secret?: unknown };
      try {
        doc = JSON.parse(text) as typeof doc;
      } catch {
        return reject(new Error(`${program} get printed something that is not JSON`));
      }
      if (typeof doc.Secret !== 'string' || doc.Secret === '') return resolve(undefined);
      resolve({ username: typeof doc.Username === 'string' ? doc.Username : '', secret: doc.Secret });
    });
    child.stdin!.end(server);
  });
}
