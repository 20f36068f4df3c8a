/**
 * A tiny Prometheus registry (counters, gauges, histograms with labels) that
 * renders text exposition format 0.0.4, and `LanderMetrics`, the domain
 * methods the daemon calls. Pure: no I/O, no timers, no dependency.
 *
 * @example
 * const m = new LanderMetrics();
 * m.bytesDownloaded('cuda-libs', 1 << 20);
 * m.installFinished('cuda-libs', true, 42.5);
 * res.end(m.render());
 */

export type Labels = Record<string, string>;

export interface MetricOptions {
  name: string;
  help: string;
  /** Label names every sample of this metric carries, in output order. @default [] */
  labelNames?: readonly string[];
  /**
   * Distinct label sets kept; a new set beyond it is not recorded (and counted
   * in `droppedSeries`), so a runaway label value cannot grow memory forever.
   * @default 1000
   */
  maxSeries?: number;
}

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values escape `\`, `"` and newline (format 0.0.4). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes `\` and newline only. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Go-style float text: `+Inf`, `-Inf`, `NaN`, else the shortest round-trip form. */
export function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function formatLabels(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i]!)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Label sets refused because `maxSeries` was reached. */
  droppedSeries = 0;
  protected readonly series = new Map<string, { values: string[]; state: S }>();
  readonly #maxSeries: number;
  abstract readonly type: 'counter' | 'gauge' | 'histogram';

  constructor(o: MetricOptions) {
    if (!NAME_RE.test(o.name)) throw new TypeError(`Expected a metric name matching ${NAME_RE}, got ${JSON.stringify(o.name)}`);
    const labelNames = o.labelNames ?? [];
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l.startsWith('__') || l === 'le') throw new TypeError(`Expected a label name matching ${LABEL_RE} (not "le", not "__*"), got ${JSON.stringify(l)}`);
    }
    this.name = o.name;
    this.help = o.help;
    this.labelNames = labelNames;
    this.#maxSeries = o.maxSeries ?? 1000;
  }

  protected abstract initial(): S;

  /** The series for these labels, created on first use; undefined when over `maxSeries`. */
  protected get(labels: Labels): { values: string[]; state: S } | undefined {
    const values = this.labelNames.map((n) => {
      const v = labels[n];
      if (v === undefined) throw new TypeError(`Metric ${this.name}: expected label "${n}"`);
      return String(v);
    });
    if (Object.keys(labels).length !== this.labelNames.length) {
      throw new TypeError(`Metric ${this.name}: expected labels ${JSON.stringify(this.labelNames)}, got ${JSON.stringify(Object.keys(labels))}`);
    }
    // JSON of the value array is an unambiguous key even when values contain separators.
    const key = JSON.stringify(values);
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.#maxSeries) {
        this.droppedSeries++;
        return undefined;
      }
      s = { values, state: this.initial() };
      this.series.set(key, s);
    }
    return s;
  }

  /** Forgets one series (e.g. an info metric's old version). */
  remove(labels: Labels): void {
    this.series.delete(JSON.stringify(this.labelNames.map((n) => String(labels[n]))));
  }

  /** Forgets every series. */
  reset(): void {
    this.series.clear();
  }

  protected abstract samples(values: string[], state: S): string[];

  render(): string {
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const { values, state } of this.series.values()) out.push(...this.samples(values, state));
    return out.join('\n') + '\n';
  }
}

export class Counter extends Metric<{ v: number }> {
  readonly type = 'counter' as const;
  protected initial() {
    return { v: 0 };
  }

  /** Adds `n` (>= 0; counters never go down). */
  inc(labels: Labels = {}, n = 1): void {
    if (!(n >= 0) || !Number.isFinite(n)) throw new RangeError(`Counter ${this.name}: expected a finite increment >= 0, got ${n}`);
    const s = this.get(labels);
    if (s) s.state.v += n;
  }

  value(labels: Labels = {}): number {
    return this.series.get(JSON.stringify(this.labelNames.map((n) => String(labels[n]))))?.state.v ?? 0;
  }

  protected samples(values: string[], state: { v: number }): string[] {
    return [`${this.name}${formatLabels(this.labelNames, values)} ${formatValue(state.v)}`];
  }
}

export class Gauge extends Metric<{ v: number }> {
  readonly type = 'gauge' as const;
  protected initial() {
    return { v: 0 };
  }

  set(labels: Labels, v: number): void {
    const s = this.get(labels);
    if (s) s.state.v = v;
  }

  inc(labels: Labels = {}, n = 1): void {
    const s = this.get(labels);
    if (s) s.state.v += n;
  }

  value(labels: Labels = {}): number | undefined {
    return this.series.get(JSON.stringify(this.labelNames.map((n) => String(labels[n]))))?.state.v;
  }

  protected samples(values: string[], state: { v: number }): string[] {
    return [`${this.name}${formatLabels(this.labelNames, values)} ${formatValue(state.v)}`];
  }
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, strictly increasing; `+Inf` is implicit. @default DEFAULT_BUCKETS */
  buckets?: readonly number[];
}

/** Seconds, from a quick config reload to a 2 GB install on a slow line. */
export const DEFAULT_BUCKETS: readonly number[] = [0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export class Histogram extends Metric<{ counts: number[]; sum: number; count: number }> {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];

  constructor(o: HistogramOptions) {
    super(o);
    const b = o.buckets ?? DEFAULT_BUCKETS;
    for (let i = 0; i < b.length; i++) {
      if (!Number.isFinite(b[i]!) || (i > 0 && b[i]! <= b[i - 1]!)) throw new TypeError(`Histogram ${o.name}: expected finite, strictly increasing buckets, got ${JSON.stringify(b)}`);
    }
    this.buckets = b;
  }

  protected initial() {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }

  observe(labels: Labels, v: number): void {
    const s = this.get(labels);
    if (!s) return;
    // Counts are kept per bucket and made cumulative when rendered.
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) s.state.counts[i]!++;
    s.state.sum += v;
    s.state.count++;
  }

  protected samples(values: string[], state: { counts: number[]; sum: number; count: number }): string[] {
    const out: string[] = [];
    let cum = 0;
    this.buckets.forEach((b, i) => {
      cum += state.counts[i]!;
      out.push(`${this.name}_bucket${formatLabels(this.labelNames, values, ['le', formatValue(b)])} ${cum}`);
    });
    out.push(`${this.name}_bucket${formatLabels(this.labelNames, values, ['le', '+Inf'])} ${state.count}`);
    out.push(`${this.name}_sum${formatLabels(this.labelNames, values)} ${formatValue(state.sum)}`);
    out.push(`${this.name}_count${formatLabels(this.labelNames, values)} ${state.count}`);
    return out;
  }
}

type AnyMetric = Counter | Gauge | Histogram;

export class Registry {
  readonly #metrics = new Map<string, AnyMetric>();

  #add<M extends AnyMetric>(m: M): M {
    if (this.#metrics.has(m.name)) throw new TypeError(`Metric ${m.name} is already registered`);
    this.#metrics.set(m.name, m);
    return m;
  }

  counter(o: MetricOptions): Counter {
    return this.#add(new Counter(o));
  }

  gauge(o: MetricOptions): Gauge {
    return this.#add(new Gauge(o));
  }

  histogram(o: HistogramOptions): Histogram {
    return this.#add(new Histogram(o));
  }

  /** Text format 0.0.4, metrics in registration order. */
  render(): string {
    return [...this.#metrics.values()].map((m) => m.render()).join('');
  }
}

/** The metrics the daemon reports, behind methods named for what happened. */
export class LanderMetrics {
  readonly registry = new Registry();
  readonly #downloadBytes = this.registry.counter({ name: 'lander_download_bytes_total', help: 'Archive bytes received from the network.', labelNames: ['component'] });
  readonly #reusedBytes = this.registry.counter({ name: 'lander_reused_bytes_total', help: 'File bytes a chunked install took from installed store entries instead of the network.', labelNames: ['component'] });
  readonly #installDuration = this.registry.histogram({ name: 'lander_install_duration_seconds', help: 'Time from the start of an install job to its end, successful or not.', labelNames: ['component'] });
  readonly #installs = this.registry.counter({ name: 'lander_installs_total', help: 'Install jobs finished, by result.', labelNames: ['component', 'result'] });
  readonly #restarts = this.registry.counter({ name: 'lander_server_restarts_total', help: 'Server restarts, by reason.', labelNames: ['reason'] });
  readonly #up = this.registry.gauge({ name: 'lander_server_up', help: '1 when the supervised server is healthy, else 0.' });
  readonly #info = this.registry.gauge({ name: 'lander_component_info', help: 'Installed version of each component in the current generation (value is always 1).', labelNames: ['component', 'version'] });
  readonly #rollbacks = this.registry.counter({ name: 'lander_rollbacks_total', help: 'Swaps back to a previous generation.' });
  readonly #generation = this.registry.gauge({ name: 'lander_current_generation', help: 'Id of the generation `current` points to.' });
  readonly #versions = new Map<string, string>();
  readonly #connections = this.registry.gauge({ name: 'lander_download_connections', help: 'HTTP connections bringing archive bytes right now (segmented downloads open several per archive).', labelNames: ['component'] });
  readonly #eld = this.registry.gauge({ name: 'lander_event_loop_delay_seconds', help: "Delay of the daemon's main event loop since start (quantile 1 is the maximum), beyond the 10 ms sampling interval.", labelNames: ['quantile'] });

  constructor() {
    // Zero-valued series from the start, so rate() and alerts see them before the first event.
    this.#up.set({}, 0);
    this.#rollbacks.inc({}, 0);
  }

  bytesDownloaded(component: string, n: number): void {
    this.#downloadBytes.inc({ component }, n);
  }

  /** Connections open for `component`'s download; 0 once it ends. */
  downloadConnections(component: string, n: number): void {
    this.#connections.set({ component }, n);
  }

  bytesReused(component: string, n: number): void {
    this.#reusedBytes.inc({ component }, n);
  }

  installFinished(component: string, ok: boolean, seconds: number): void {
    this.#installDuration.observe({ component }, seconds);
    this.#installs.inc({ component, result: ok ? 'ok' : 'failed' });
  }

  serverRestarted(reason: string): void {
    this.#restarts.inc({ reason });
  }

  serverUp(up: boolean): void {
    this.#up.set({}, up ? 1 : 0);
  }

  /** Sets the info series of `component`, removing the one of its previous version. */
  componentVersion(component: string, version: string): void {
    const prev = this.#versions.get(component);
    if (prev !== undefined && prev !== version) this.#info.remove({ component, version: prev });
    this.#versions.set(component, version);
    this.#info.set({ component, version }, 1);
  }

  rollback(): void {
    this.#rollbacks.inc();
  }

  /** The current generation's id; null (no generation yet) removes the sample. */
  generation(id: number | null): void {
    if (id === null) this.#generation.reset();
    else this.#generation.set({}, id);
  }

  /** Event-loop delay quantiles, in ms beyond the sampling resolution (monitorEventLoopDelay counts the whole interval). */
  eventLoopDelay(q: { p50: number; p99: number; max: number }): void {
    this.#eld.set({ quantile: '0.5' }, q.p50 / 1000);
    this.#eld.set({ quantile: '0.99' }, q.p99 / 1000);
    this.#eld.set({ quantile: '1' }, q.max / 1000);
  }

  render(): string {
    return this.registry.render();
  }
}
