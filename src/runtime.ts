/**
 * The only place where Node.js and Deno differ for lander.
 */

export const isDeno = 'Deno' in globalThis;

/** True when this runtime executes `.ts` files directly (Deno, Node >= 22.18). */
export function canRunTypeScript(): boolean {
  return isDeno || !!(process as unknown as { features?: { typescript?: unknown } }).features?.typescript;
}

/**
 * URL of a module that sits at `relPath` from the module at `base`
 * (an `import.meta.url`), in the form this runtime can load in a worker:
 * the `.ts` source under Deno and new Node; the compiled `dist/**.js` when
 * running from sources on Node 20 (vitest), so `npm run build` must come first.
 *
 * @example workerUrl(import.meta.url, '../workers/install.worker.ts')
 */
export function moduleUrl(base: string, relPath: string): URL {
  if (!base.endsWith('.ts')) return new URL(relPath.replace(/\.ts$/, '.js'), base);
  if (canRunTypeScript()) return new URL(relPath, base);
  const compiledBase = base.replace(/\/(src|workers|bench|test)\/(?!.*\/(src|workers|bench|test)\/)/, '/dist/$1/');
  return new URL(relPath.replace(/\.ts$/, '.js'), compiledBase);
}

export const runtimeName = isDeno ? `deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `node ${process.version}`;

/**
 * The command line that runs a plain JavaScript file with this same runtime:
 * `node FILE` or `deno run -A FILE`. Tests use it to start stand-in servers.
 */
export function scriptCommand(file: string, args: string[] = []): { command: string; args: string[] } {
  return { command: process.execPath, args: isDeno ? ['run', '-A', file, ...args] : [file, ...args] };
}
