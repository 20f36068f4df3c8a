/**
 * Deno's permission errors in lander's words. Deno throws `NotCapable`
 * ("Requires env access to "X", run again with the --allow-env flag") from
 * wherever the access happens, often inside a dependency at import time; the
 * operator needs the flag and the full list lander wants, not a stack.
 */

/** The flags lander needs under Deno (README "Under Deno"). */
export const DENO_FLAGS = '--allow-env --allow-sys=hostname,uid,statfs --allow-read --allow-write --allow-net --allow-run';

/** The runtime's permission error in `err`'s cause chain, if any. */
export function runtimePermissionError(err: unknown): Error | undefined {
  for (let e: unknown = err, i = 0; e && i < 10; e = (e as { cause?: unknown }).cause, i++) {
    const name = (e as { name?: unknown }).name;
    if (name === 'NotCapable' || name === 'PermissionDenied' || /^Requires \w+ access to /.test(String((e as Error).message))) return e as Error;
  }
  return undefined;
}

/**
 * `Cannot run lander: Deno denied env access to "LANDER_CONFIG"; add --allow-env (lander needs ...)`,
 * or undefined when `err` is no permission error.
 */
export function permissionMessage(err: unknown): string | undefined {
  const e = runtimePermissionError(err);
  if (!e) return undefined;
  const m = /^Requires (\w+) access to (.+?), run again with the (--[\w-]+) flag/.exec(e.message);
  const what = m ? `${m[1]} access to ${m[2]}` : e.message;
  const flag = m ? `add ${m[3]}${m[1] === 'sys' ? `=${m[2]!.replace(/"/g, '')}` : ''}` : 'grant the permission';
  return `Cannot run lander: Deno denied ${what}; ${flag} (lander needs: deno run ${DENO_FLAGS} src/main.ts ...)`;
}
