/**
 * A stand-in `DaemonControl` for the status API's transport tests: a fixed
 * status, events the test pushes, actions that answer or fail on request.
 * The daemon itself is tested elsewhere; this only lets the API be driven.
 */
import type { DaemonControl, DaemonEvent, DaemonHealth, DaemonStatus } from '../../src/report/daemon-model.ts';
import { LanderError } from '../../src/base/errors.ts';
import { LanderMetrics } from '../../src/report/metrics.ts';

export function sampleStatus(root: string): DaemonStatus {
  return {
    version: '0.1.0',
    pid: 4242,
    runtime: 'node test',
    startedAt: '2025-01-01T00:00:00.000Z',
    root,
    configPath: `${root}/lander.json`,
    config: { loadedAt: '2025-01-01T00:00:00.000Z' },
    components: {
      server: { desired: '0.3.1', installed: '0.3.0', sha256: 'a'.repeat(64), bad: [], job: { version: '0.3.1', phase: 'download', bytes: 1024, total: 4096, rate: 512, startedAt: '2025-01-01T00:00:01.000Z' } },
      'cuda-libs': { desired: 'cu128-v1', installed: 'cu128-v1', bad: ['cu128-v0'] },
    },
    current: 2,
    generations: [
      { id: 1, status: 'good', createdAt: '2025-01-01T00:00:00.000Z', components: { server: '0.2.9', 'cuda-libs': 'cu128-v1' } },
      { id: 2, status: 'good', createdAt: '2025-01-01T00:00:00.000Z', components: { server: '0.3.0', 'cuda-libs': 'cu128-v1' } },
    ],
    server: { state: 'healthy', pid: 777, generation: 2, since: '2025-01-01T00:00:02.000Z', restarts: 0 },
    lastErrors: [],
  };
}

export class FakeControl implements DaemonControl {
  readonly listeners = new Set<(e: DaemonEvent) => void>();
  readonly metrics = new LanderMetrics();
  calls: string[] = [];
  /** Set to make the next actions throw this. */
  fail: Partial<Record<'check' | 'restart' | 'rollback', Error>> = {};
  statusValue: DaemonStatus;

  constructor(root: string) {
    this.statusValue = sampleStatus(root);
    this.metrics.componentVersion('server', '0.3.0');
    this.metrics.generation(2);
  }

  status(): DaemonStatus {
    return this.statusValue;
  }

  healthValue: DaemonHealth = {
    ok: true,
    checks: {
      config: { ok: true, loadedAt: '2025-01-01T00:00:00.000Z' },
      lastCheck: { ok: true, at: '2025-01-01T00:00:00.000Z' },
      jobs: { ok: true, stuck: [], stuckAfterMs: 60_000 },
      server: { ok: true, state: 'healthy' },
      desired: { ok: true, failing: {} },
    },
  };

  health(): DaemonHealth {
    return this.healthValue;
  }

  async check(): Promise<{ queued: boolean }> {
    this.calls.push('check');
    if (this.fail.check) throw this.fail.check;
    return { queued: true };
  }

  async restart(): Promise<{ pid?: number; generation?: number | string }> {
    this.calls.push('restart');
    if (this.fail.restart) throw this.fail.restart;
    return { pid: 778, generation: 2 };
  }

  async rollback(): Promise<{ from: number | null; to: number }> {
    this.calls.push('rollback');
    if (this.fail.rollback) throw this.fail.rollback;
    return { from: 2, to: 1 };
  }

  async unmark(component: string, version: string): Promise<{ cleared: boolean }> {
    this.calls.push(`unmark ${component} ${version}`);
    return { cleared: true };
  }

  subscribe(listener: (e: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  metricsText(): string {
    return this.metrics.render();
  }

  emit(e: DaemonEvent): void {
    for (const l of this.listeners) l(e);
  }
}

export const noRollback = () => new LanderError('ERR_NO_ROLLBACK', 'Cannot roll back: there is no earlier good generation');
