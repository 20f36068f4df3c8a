/**
 * Whether lander itself is healthy (its config, checks, jobs, server, and
 * whether the desired components can be installed), as `GET /healthz`, `lander status`'s exit
 * code and the systemd watchdog see it. Pure: the daemon passes a snapshot.
 *
 * A job is stuck when it reported nothing for longer than a download can
 * legitimately stay silent: every attempt is bounded by the connect and idle
 * timeouts plus a backoff, and a job makes at most `retries + 1` attempts per
 * URL before it fails, so (retries + 2) x (connect + idle + backoffMax) with
 * no progress means the job is wedged, not slow.
 */
import type { DownloadConfig } from '../config/schema.ts';
import type { DaemonHealth } from './daemon-model.ts';

export interface HealthInput {
  now: number;
  configLoadedAt: string;
  lastInvalid?: { at: string };
  lastCheckAt?: string;
  /** Jobs in flight: component → last progress (ms since the epoch). */
  jobs: Record<string, number>;
  download: Pick<DownloadConfig, 'retries' | 'connectTimeout' | 'idleTimeout' | 'backoffMax'>;
  /** The supervisor's state, or 'none' without a configured server. */
  server: string;
  /** Whether a generation is installed (a server cannot run before the first). */
  installed: boolean;
  /** Components whose desired version the last reconcile could not install: name → why. */
  failing?: Record<string, string>;
}

/** Server states that are fine: running, or passing through a planned stop or start. */
const SERVER_OK = new Set(['healthy', 'none', 'starting', 'stopping']);

export function stuckAfterMs(d: HealthInput['download']): number {
  return (d.retries + 2) * (d.connectTimeout + d.idleTimeout + d.backoffMax);
}

export function assessHealth(h: HealthInput): DaemonHealth {
  const bound = stuckAfterMs(h.download);
  const stuck = Object.entries(h.jobs).filter(([, t]) => h.now - t > bound).map(([c]) => c);
  const serverOk = SERVER_OK.has(h.server) || (h.server === 'stopped' && !h.installed);
  const configOk = !h.lastInvalid;
  const failing = Object.entries(h.failing ?? {});
  const checks: DaemonHealth['checks'] = {
    config: { ok: configOk, loadedAt: h.configLoadedAt, ...(h.lastInvalid ? { detail: `an edit was rejected at ${h.lastInvalid.at}; the last good config is live` } : {}) },
    lastCheck: { ok: true, ...(h.lastCheckAt ? { at: h.lastCheckAt } : { detail: 'no check yet' }) },
    jobs: { ok: stuck.length === 0, stuck, stuckAfterMs: bound, ...(stuck.length ? { detail: `no progress for over ${Math.round(bound / 1000)} s: ${stuck.join(', ')}` } : {}) },
    server: { ok: serverOk, state: h.server, ...(serverOk ? {} : { detail: `the server is ${h.server}` }) },
    desired: { ok: failing.length === 0, failing: Object.fromEntries(failing), ...(failing.length ? { detail: failing.map(([, why]) => why).join('; ') } : {}) },
  };
  return { ok: Object.values(checks).every((c) => c.ok), checks };
}
