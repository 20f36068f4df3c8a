/**
 * Progress bars for people at a terminal: one line per component, redrawn in
 * place at most ~10 times a second, each with its rate and time left (ETA).
 * Pure rendering (`renderBar`) apart from
 * the writer.
 */
import { formatBytes } from '../base/units.ts';

export interface BarState {
  label: string;
  bytes: number;
  total?: number;
  rate: number;
  note?: string;
}

export function renderBar(s: BarState, width = 28): string {
  const frac = s.total ? Math.min(1, s.bytes / s.total) : undefined;
  const filled = frac === undefined ? 0 : Math.round(frac * width);
  const bar = frac === undefined ? '?'.padEnd(width, ' ') : '#'.repeat(filled) + '-'.repeat(width - filled);
  const pct = frac === undefined ? '   ?%' : `${(frac * 100).toFixed(0).padStart(4)}%`;
  const size = `${formatBytes(s.bytes)}${s.total ? ` / ${formatBytes(s.total)}` : ''}`;
  const rate = s.rate > 0 ? `  ${formatBytes(s.rate)}/s` : '';
  const eta = s.total && s.rate > 0 && s.bytes < s.total ? `  ETA ${formatEta((s.total - s.bytes) / s.rate)}` : '';
  return `${s.label.padEnd(12)} [${bar}] ${pct}  ${size}${rate}${eta}${s.note ? `  ${s.note}` : ''}`;
}

/** Seconds left as `42s`, `3m05s`, `2h10m`; `>99h` past that. */
export function formatEta(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 100 * 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return '>99h';
}

export class ProgressBars {
  readonly #out: NodeJS.WriteStream;
  readonly #bars = new Map<string, BarState>();
  #drawn = 0;
  #last = 0;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }

  update(key: string, s: BarState, force = false): void {
    this.#bars.set(key, s);
    const now = performance.now();
    if (!force && now - this.#last < 100) return;
    this.#last = now;
    this.draw();
  }

  /** Writes a line above the bars (an event, a message) and redraws the bars below it. */
  print(line: string): void {
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A\x1b[J` : '';
    this.#out.write(`${up}\r\x1b[2K${line}\n`);
    this.#drawn = 0;
    if (this.#bars.size > 0) this.draw();
  }

  /** Forgets a bar (its component finished); it disappears at the next draw. */
  remove(key: string): void {
    this.#bars.delete(key);
  }

  draw(): void {
    const lines = [...this.#bars.values()].map((b) => renderBar(b));
    // Clear to the end of the screen too: a removed bar must not leave its old line behind.
    const up = this.#drawn > 0 ? `\x1b[${this.#drawn}A\x1b[J` : '';
    this.#out.write(up + lines.map((l) => `\r\x1b[2K${l}\n`).join(''));
    this.#drawn = lines.length;
  }
}
