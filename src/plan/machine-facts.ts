/**
 * The facts about this machine that rollout and targeting decide on: its id
 * (`machineId` in the config, else /etc/machine-id), OS, CPU architecture
 * and NVIDIA driver version (/proc/driver/nvidia/version, else
 * `nvidia-smi --query-gpu=driver_version`). Read once per daemon start and
 * on config reloads; parsing is pure and tested apart.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { TargetFacts } from './targeting.ts';

export interface MachineFacts extends TargetFacts {
  /** Stable id for rollout buckets; absent when none could be read. */
  machineId?: string;
  /** Where `machineId` came from: `config` or the file read. */
  machineIdSource?: string;
  /** Where the driver version came from: the version file or `nvidia-smi`. */
  nvidiaDriverSource?: string;
}

export interface ReadFactsOptions {
  /** From the config: wins over the file. */
  machineId?: string;
  /** @default "/etc/machine-id" */
  machineIdPath?: string;
  /** @default $LANDER_NVIDIA_VERSION_FILE, else "/proc/driver/nvidia/version" */
  nvidiaVersionPath?: string;
  /** The nvidia-smi to run when the version file is missing; false not to run one. @default "nvidia-smi", none when $LANDER_NVIDIA_VERSION_FILE is set */
  nvidiaSmi?: string | false;
  /** @default 5000 */
  nvidiaSmiTimeoutMs?: number;
  /** @default process.platform */
  os?: string;
  /** @default process.arch */
  arch?: string;
}

/**
 * The driver version in /proc/driver/nvidia/version, e.g. from
 * `NVRM version: NVIDIA UNIX x86_64 Kernel Module  575.51.03  Wed May 28 ...`
 * or `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.133.07  Release Build ...`.
 */
export function parseNvidiaVersionFile(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith('NVRM version:'));
  const m = line ? /Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)\b/.exec(line) : undefined;
  return m?.[1];
}

/** The first GPU's driver from `nvidia-smi --query-gpu=driver_version --format=csv,noheader` (one line per GPU). */
export function parseNvidiaSmiOutput(text: string): string | undefined {
  const first = text.split('\n').map((l) => l.trim()).find((l) => l !== '');
  return first && /^\d+\.\d+(?:\.\d+)?$/.test(first) ? first : undefined;
}

/** A machine id: systemd's 32 hex digits, or any non-empty line without spaces. */
export function parseMachineId(text: string): string | undefined {
  const id = text.trim();
  return id !== '' && !/\s/.test(id) ? id : undefined;
}

export async function readMachineFacts(o: ReadFactsOptions = {}): Promise<MachineFacts> {
  const facts: MachineFacts = { os: o.os ?? process.platform, arch: o.arch ?? process.arch };
  if (o.machineId !== undefined) {
    facts.machineId = o.machineId;
    facts.machineIdSource = 'config';
  } else {
    const file = o.machineIdPath ?? '/etc/machine-id';
    const id = await readFile(file, 'utf8').then(parseMachineId, () => undefined); // no file: rollouts below 100% wait, and say so
    if (id !== undefined) {
      facts.machineId = id;
      facts.machineIdSource = file;
    }
  }
  const standIn = process.env.LANDER_NVIDIA_VERSION_FILE;
  const versionPath = o.nvidiaVersionPath ?? (standIn || '/proc/driver/nvidia/version');
  const tried: string[] = [];
  try {
    const v = parseNvidiaVersionFile(await readFile(versionPath, 'utf8'));
    if (v !== undefined) {
      facts.nvidiaDriver = v;
      facts.nvidiaDriverSource = versionPath;
      return facts;
    }
    tried.push(`${versionPath}: no "NVRM version" line with a version`);
  } catch (err) {
    tried.push(`${versionPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const smi = o.nvidiaSmi ?? (standIn ? false : 'nvidia-smi');
  if (smi !== false) {
    const r = await runSmi(smi, o.nvidiaSmiTimeoutMs ?? 5000);
    if ('version' in r) {
      facts.nvidiaDriver = r.version;
      facts.nvidiaDriverSource = smi;
      return facts;
    }
    tried.push(`${smi}: ${r.error}`);
  }
  facts.nvidiaDriverError = tried.join('; ');
  return facts;
}

function runSmi(cmd: string, timeoutMs: number): Promise<{ version: string } | { error: string }> {
  return new Promise((resolve) => {
    // Deno without --allow-run throws here rather than calling back.
    try {
      start(resolve);
    } catch (err) {
      resolve({ error: (err as Error).message.split('\n')[0]! });
    }
  });
  function start(resolve: (r: { version: string } | { error: string }) => void): void {
    execFile(cmd, ['--query-gpu=driver_version', '--format=csv,noheader'], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (err, stdout) => {
      if (err) return resolve({ error: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : err.message.split('\n')[0]! });
      const v = parseNvidiaSmiOutput(String(stdout));
      resolve(v ? { version: v } : { error: 'no driver version in its output' });
    });
  }
}
