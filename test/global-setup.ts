/**
 * The suite leaves no temp folders behind. Every test file runs with TMPDIR
 * pointing at one private folder made here (so `os.tmpdir()` in tests and in
 * the lander processes they spawn lands there, and other suites running on
 * the same machine cannot be confused with ours); at the end, anything still
 * in it is a leak: it is named, and the run fails.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const base = mkdtempSync(path.join(os.tmpdir(), 'lander-suite-'));
  // Traversable, as /tmp is: squid, started as root, drops to its own user and must reach its folder in here.
  chmodSync(base, 0o755);
  process.env.TMPDIR = base;
  return () => {
    const left = readdirSync(base);
    rmSync(base, { recursive: true, force: true });
    if (left.length === 0) return;
    // vitest reports an error thrown here but keeps its exit code: set it too.
    process.exitCode = 1;
    throw new Error(`the tests left ${left.length} temp folder(s) behind in ${base}: ${left.sort().join(', ')}`);
  };
}
