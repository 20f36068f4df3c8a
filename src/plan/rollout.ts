/**
 * Staged rollout (pure): a machine takes a component's new version when its
 * stable bucket, from the SHA-256 of (machine id, component, version), is
 * below the rollout's percent. The bucket depends on the version, so each
 * release picks its own first machines instead of always the same unlucky ones.
 */
import { createHash } from 'node:crypto';

/** A manifest's `rollout`: the share of machines that take this version. */
export interface Rollout {
  /** 0 to 100; 100 (or no rollout) is every machine. */
  percent: number;
}

/** Buckets are whole numbers 0-99: `percent: 25` takes buckets 0-24. */
export const ROLLOUT_BUCKETS = 100;

/**
 * The machine's bucket for one component version, in [0, 100): the first
 * 8 bytes of SHA-256(`machineId \0 component \0 version`) scaled to 100.
 *
 * @example rolloutBucket('4c4c4544004a3510', 'server', '1.2.0') // → the same number on every run
 */
export function rolloutBucket(machineId: string, component: string, version: string): number {
  const h = createHash('sha256').update(`${machineId}\0${component}\0${version}`).digest();
  // 64 bits scaled exactly: no float rounding pushes a value to 100.
  return Number((h.readBigUInt64BE(0) * BigInt(ROLLOUT_BUCKETS)) >> 64n);
}

export type RolloutDecision =
  | { take: true; bucket?: number }
  | { take: false; bucket?: number; reason: string };

/**
 * Whether this machine takes `version` of `component` now. Without a machine
 * id a partial rollout cannot pick this machine fairly, so it waits and says why.
 *
 * @example inRollout({ machineId, component: 'server', version: '1.2.0', rollout: { percent: 25 } })
 * // → { take: false, bucket: 63, reason: 'waiting for rollout: bucket 63, rollout 25%' }
 */
export function inRollout(o: { machineId?: string; component: string; version: string; rollout?: Rollout }): RolloutDecision {
  const percent = o.rollout?.percent ?? 100;
  if (percent >= 100) return { take: true };
  if (o.machineId === undefined || o.machineId === '') {
    return { take: false, reason: `waiting for rollout: rollout ${percent}%, and this machine has no id (set "machineId" in the config, or provide /etc/machine-id)` };
  }
  const bucket = rolloutBucket(o.machineId, o.component, o.version);
  if (bucket < percent) return { take: true, bucket };
  return { take: false, bucket, reason: `waiting for rollout: bucket ${bucket}, rollout ${percent}%` };
}
