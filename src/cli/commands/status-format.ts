/**
 * Pure text for people: the daemon's status as a table, and one line per
 * daemon event for `lander status --watch`. Hostile-input note: every string
 * here came from the daemon's API; control characters are replaced so a
 * version or error message cannot move the cursor or rewrite the terminal.
 */
import type { DaemonEvent, DaemonStatus } from '../../report/daemon-model.ts';
import { formatBytes } from '../../base/units.ts';

/** Control characters (C0, DEL, C1) shown as U+FFFD: nothing the daemon says can drive the terminal. */
export function safe(s: unknown): string {
  // eslint-disable-next-line no-control-regex
  return String(s ?? '').replace(/[\x00-\x1f\x7f-\x9f]/g, '\uFFFD');
}

function pad(s: unknown, n: number): string {
  return safe(s).padEnd(n);
}

function jobText(j: NonNullable<DaemonStatus['components'][string]['job']>): string {
  const pct = j.total ? ` ${((j.bytes / j.total) * 100).toFixed(0)}%` : '';
  const size = j.total ? `${formatBytes(j.bytes)} / ${formatBytes(j.total)}` : formatBytes(j.bytes);
  const rate = j.rate > 0 ? ` ${formatBytes(j.rate)}/s` : '';
  const conns = (j.connections ?? 0) > 1 ? ` over ${j.connections} connections` : '';
  return `${safe(j.phase)} ${safe(j.version)}${pct} ${size}${rate}${conns}${j.reusedBytes !== undefined ? ` (${deltaText(j.reusedBytes, j.bytes)})` : ''}`;
}

/** A chunked install's split: "reused 95.2 MiB locally, fetched 0.2 MiB". */
export function deltaText(reused: number, fetched: number): string {
  // One unit for both once either is a MiB, so the two read side by side.
  const f = Math.max(reused, fetched) >= 1 << 20 ? (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB` : formatBytes;
  return `reused ${f(reused)} locally, fetched ${f(fetched)}`;
}

export function formatDaemonStatus(s: DaemonStatus): string {
  const lines: string[] = [];
  lines.push(`lander      ${safe(s.version)} (pid ${s.pid}, ${safe(s.runtime)}), running since ${safe(s.startedAt)}`);
  lines.push(`root        ${safe(s.root)}`);
  const invalid = s.config.lastInvalid ? `; last edit rejected at ${safe(s.config.lastInvalid.at)}: ${s.config.lastInvalid.issues.map((i) => `${safe(i.path)}: ${safe(i.message)}`).join('; ')}` : '';
  lines.push(`config      ${safe(s.configPath)} (loaded ${safe(s.config.loadedAt)}${invalid})`);
  if (s.manifest) {
    const m = s.manifest;
    lines.push(`manifest    ${safe(m.url)}${m.lastCheckAt ? ` (checked ${safe(m.lastCheckAt)}${m.lastStatus ? `, status ${m.lastStatus}` : ''})` : ' (not checked yet)'}${m.error ? `  error: ${safe(m.error)}` : ''}`);
  }
  const sv = s.server;
  const svParts = [safe(sv.state)];
  if (sv.pid !== undefined) svParts.push(`pid ${sv.pid}`);
  if (sv.generation !== undefined) svParts.push(`generation ${safe(sv.generation)}`);
  if (sv.since) svParts.push(`since ${safe(sv.since)}`);
  if (sv.restarts !== undefined) svParts.push(`restarts ${sv.restarts}`);
  lines.push(`server      ${svParts.join(', ')}`);
  const rd = sv.restartDeferred;
  if (rd) lines.push(`restart     onto generation ${rd.generation} deferred until the server is idle: waited ${(rd.waitedMs / 1000).toFixed(0)} s of at most ${(rd.maxDeferralMs / 1000).toFixed(0)} s`);
  lines.push(`current     ${s.current === null ? '(none)' : `generation ${s.current}`}`);
  if (s.lastCheckAt) lines.push(`last check  ${safe(s.lastCheckAt)}`);
  lines.push('', 'component     desired         installed       activity');
  for (const [n, c] of Object.entries(s.components)) {
    const skipped = c.desired !== undefined && c.bad.includes(c.desired) ? `skipped: ${safe(c.desired)} is marked bad (lander unmark ${safe(n)} ${safe(c.desired)})` : '';
    const activity = c.job ? jobText(c.job) : skipped || (c.note ? safe(c.note) : '-');
    lines.push(`${pad(n, 13)} ${pad(c.desired ?? '-', 15)} ${pad(c.installed ?? '-', 15)} ${activity}${c.bad.length ? `  bad: ${c.bad.map(safe).join(', ')}` : ''}`);
  }
  lines.push('', 'generations');
  if (s.generations.length === 0) lines.push('  (none)');
  for (const g of s.generations) {
    lines.push(`  ${String(g.id).padEnd(4)} ${pad(g.status, 5)} ${Object.entries(g.components).map(([n, v]) => `${safe(n)}@${safe(v)}`).join(' ')}${g.id === s.current ? '  <- current' : ''}`);
  }
  if (s.lastErrors.length > 0) {
    lines.push('', 'recent errors');
    for (const e of s.lastErrors.slice(-5)) lines.push(`  ${safe(e.at)}  ${safe(e.error.code ?? e.error.name)}  ${safe(e.error.message)}`);
  }
  return lines.join('\n') + '\n';
}

/** One line per event, or undefined for progress (drawn as bars, or skipped off a TTY). */
export function formatEvent(e: DaemonEvent): string | undefined {
  switch (e.type) {
    case 'progress':
      return undefined;
    case 'install':
      return `install   ${safe(e.component)} ${safe(e.version)} ${safe(e.status)}${e.error ? `: ${safe(e.error)}` : ''}`;
    case 'server.state':
      return `server    ${safe(e.from)} -> ${safe(e.to)}${e.pid !== undefined ? ` (pid ${e.pid})` : ''}${e.generation !== undefined ? ` generation ${safe(e.generation)}` : ''}`;
    case 'landed':
      return `landed    generation ${e.generation}${e.from !== null ? ` (was ${e.from})` : ''}${e.restarted ? ', server restarted' : ''} in ${(e.durationMs / 1000).toFixed(1)} s`;
    case 'rollback':
      return `rollback  generation ${e.from} -> ${e.to ?? '(none)'}: ${safe(e.reason)}`;
    case 'config':
      return `config    ${safe(e.status)}${e.issues?.length ? `: ${e.issues.map((i) => `${safe(i.path)}: ${safe(i.message)}`).join('; ')}` : ''}`;
    case 'idle-wait':
      return e.status === 'waiting'
        ? `restart   onto generation ${e.generation} deferred until the server is idle (at most ${((e.maxDeferralMs ?? 0) / 1000).toFixed(0)} s)`
        : 'restart   the idle wait is over; restarting';
    case 'bad':
      return e.action === 'skipped'
        ? `bad       ${safe(e.component)} ${safe(e.version)} is marked bad and skipped; lander unmark ${safe(e.component)} ${safe(e.version)} tries it again`
        : `bad       ${safe(e.component)} ${safe(e.version)} unmarked; trying it again`;
    default:
      return `event     ${safe((e as { type?: unknown }).type)}`;
  }
}

/** A progress line for logs and pipes (no bars), throttled by the caller. */
export function formatProgress(e: Extract<DaemonEvent, { type: 'progress' }>): string {
  const pct = e.total ? ` ${((e.bytes / e.total) * 100).toFixed(0)}%` : '';
  return `progress  ${safe(e.component)} ${safe(e.version)}${pct} ${formatBytes(e.bytes)}${e.total ? ` / ${formatBytes(e.total)}` : ''}${e.rate > 0 ? ` ${formatBytes(e.rate)}/s` : ''}${(e.connections ?? 0) > 1 ? ` over ${e.connections} connections` : ''}${e.reusedBytes !== undefined ? ` (${deltaText(e.reusedBytes, e.downloadedBytes)})` : ''}`;
}
