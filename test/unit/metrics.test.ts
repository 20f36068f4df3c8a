import { describe, expect, it } from 'vitest';
import { Counter, Histogram, LanderMetrics, Registry, escapeLabelValue, formatValue } from '../../src/report/metrics.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';

describe('Registry', () => {
  it('renders HELP and TYPE lines and samples in format 0.0.4', () => {
    const r = new Registry();
    const c = r.counter({ name: 'x_total', help: 'Things.\nSecond line with \\ backslash', labelNames: ['a'] });
    c.inc({ a: '1' });
    c.inc({ a: '1' }, 2);
    r.gauge({ name: 'g', help: 'A gauge.' }).set({}, -1.5);
    expect(r.render()).toBe(
      '# HELP x_total Things.\\nSecond line with \\\\ backslash\n# TYPE x_total counter\nx_total{a="1"} 3\n' +
        '# HELP g A gauge.\n# TYPE g gauge\ng -1.5\n',
    );
  });

  it('escapes label values and parses them back', () => {
    const r = new Registry();
    const nasty = 'a"b\\c\nd}{,=';
    r.counter({ name: 'c_total', help: 'h', labelNames: ['v'] }).inc({ v: nasty });
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const fams = parsePromText(r.render());
    expect(fams[0]!.samples[0]!.labels.v).toBe(nasty);
  });

  it('renders histograms with cumulative buckets, +Inf, _sum and _count', () => {
    const h = new Histogram({ name: 'd_seconds', help: 'h', labelNames: ['c'], buckets: [1, 5] });
    h.observe({ c: 'x' }, 0.5);
    h.observe({ c: 'x' }, 3);
    h.observe({ c: 'x' }, 3);
    h.observe({ c: 'x' }, 100);
    expect(h.render().split('\n').slice(2)).toEqual([
      'd_seconds_bucket{c="x",le="1"} 1',
      'd_seconds_bucket{c="x",le="5"} 3',
      'd_seconds_bucket{c="x",le="+Inf"} 4',
      'd_seconds_sum{c="x"} 106.5',
      'd_seconds_count{c="x"} 4',
      '',
    ]);
    expect(() => parsePromText(h.render())).not.toThrow();
  });

  it('formats special values the way Prometheus reads them', () => {
    expect([Infinity, -Infinity, NaN, 1e21, 0.1].map(formatValue)).toEqual(['+Inf', '-Inf', 'NaN', '1e+21', '0.1']);
  });

  it('refuses bad names, missing labels, negative increments and duplicates', () => {
    const r = new Registry();
    expect(() => r.counter({ name: 'bad-name', help: '' })).toThrow(/metric name/);
    expect(() => r.counter({ name: 'ok', help: '', labelNames: ['le'] })).toThrow(/label name/);
    const c = r.counter({ name: 'c', help: '', labelNames: ['a'] });
    expect(() => c.inc({})).toThrow(/label "a"/);
    expect(() => c.inc({ a: 'x', b: 'y' })).toThrow(/expected labels/);
    expect(() => c.inc({ a: 'x' }, -1)).toThrow(RangeError);
    expect(() => r.gauge({ name: 'c', help: '' })).toThrow(/already registered/);
    expect(() => new Histogram({ name: 'h', help: '', buckets: [2, 1] })).toThrow(/increasing/);
  });

  it('caps the number of series so a runaway label cannot grow memory', () => {
    const c = new Counter({ name: 'c', help: '', labelNames: ['a'], maxSeries: 3 });
    for (let i = 0; i < 10; i++) c.inc({ a: String(i) });
    expect(c.droppedSeries).toBe(7);
    expect(parsePromText(c.render())[0]!.samples).toHaveLength(3);
  });
});

describe('LanderMetrics', () => {
  it('reports the domain events as parseable Prometheus text', () => {
    const m = new LanderMetrics();
    m.bytesDownloaded('cuda-libs', 1000);
    m.bytesDownloaded('cuda-libs', 24);
    m.bytesDownloaded('server', 7);
    m.installFinished('cuda-libs', true, 42);
    m.installFinished('server', false, 0.2);
    m.serverRestarted('landed');
    m.serverRestarted('landed');
    m.serverRestarted('crash');
    m.serverUp(true);
    m.componentVersion('server', '0.3.0');
    m.componentVersion('server', '0.3.1');
    m.componentVersion('cuda-libs', 'cu128-v1');
    m.rollback();
    m.generation(7);
    m.eventLoopDelay({ p50: 0.5, p99: 4, max: 12 });
    m.downloadConnections('cuda-libs', 8);
    m.downloadConnections('server', 3);
    m.downloadConnections('server', 0);

    const fams = parsePromText(m.render());
    const v = (name: string, labels?: Record<string, string>) => sampleValue(fams, name, labels);
    expect(v('lander_download_bytes_total', { component: 'cuda-libs' })).toBe(1024);
    expect(v('lander_download_bytes_total', { component: 'server' })).toBe(7);
    expect(v('lander_install_duration_seconds_count', { component: 'cuda-libs' })).toBe(1);
    expect(v('lander_install_duration_seconds_sum', { component: 'cuda-libs' })).toBe(42);
    expect(v('lander_install_duration_seconds_bucket', { component: 'cuda-libs', le: '30' })).toBe(0);
    expect(v('lander_install_duration_seconds_bucket', { component: 'cuda-libs', le: '60' })).toBe(1);
    expect(v('lander_installs_total', { component: 'cuda-libs', result: 'ok' })).toBe(1);
    expect(v('lander_installs_total', { component: 'server', result: 'failed' })).toBe(1);
    expect(v('lander_server_restarts_total', { reason: 'landed' })).toBe(2);
    expect(v('lander_server_restarts_total', { reason: 'crash' })).toBe(1);
    expect(v('lander_server_up')).toBe(1);
    expect(v('lander_component_info', { component: 'server', version: '0.3.1' })).toBe(1);
    expect(v('lander_component_info', { component: 'server', version: '0.3.0' })).toBeUndefined();
    expect(v('lander_component_info', { component: 'cuda-libs', version: 'cu128-v1' })).toBe(1);
    expect(v('lander_rollbacks_total')).toBe(1);
    expect(v('lander_current_generation')).toBe(7);
    expect(v('lander_download_connections', { component: 'cuda-libs' })).toBe(8);
    expect(v('lander_download_connections', { component: 'server' })).toBe(0);
    expect(v('lander_event_loop_delay_seconds', { quantile: '0.99' })).toBe(0.004);
    expect(v('lander_event_loop_delay_seconds', { quantile: '1' })).toBe(0.012);
    expect(fams.map((f) => [f.name, f.type])).toEqual([
      ['lander_download_bytes_total', 'counter'],
      ['lander_reused_bytes_total', 'counter'],
      ['lander_install_duration_seconds', 'histogram'],
      ['lander_installs_total', 'counter'],
      ['lander_server_restarts_total', 'counter'],
      ['lander_server_up', 'gauge'],
      ['lander_component_info', 'gauge'],
      ['lander_rollbacks_total', 'counter'],
      ['lander_current_generation', 'gauge'],
      ['lander_download_connections', 'gauge'],
      ['lander_event_loop_delay_seconds', 'gauge'],
    ]);
    expect(fams.every((f) => f.help && f.help.length > 0)).toBe(true);
  });

  it('starts with zero-valued up and rollbacks, and drops the generation when none', () => {
    const m = new LanderMetrics();
    let fams = parsePromText(m.render());
    expect(sampleValue(fams, 'lander_server_up')).toBe(0);
    expect(sampleValue(fams, 'lander_rollbacks_total')).toBe(0);
    m.generation(3);
    m.generation(null);
    fams = parsePromText(m.render());
    expect(sampleValue(fams, 'lander_current_generation')).toBeUndefined();
    m.serverUp(true);
    m.serverUp(false);
    expect(sampleValue(parsePromText(m.render()), 'lander_server_up')).toBe(0);
  });

  it('is rejected by the strict parser when malformed (the parser is not a rubber stamp)', () => {
    expect(() => parsePromText('# TYPE a counter\nb 1\n')).toThrow(/does not belong/);
    expect(() => parsePromText('# TYPE a counter\na{x="\\q"} 1\n')).toThrow(/bad escape/);
    expect(() => parsePromText('# TYPE a counter\na 1')).toThrow(/newline/);
    expect(() => parsePromText('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')).toThrow(/cumulative/);
    expect(() => parsePromText('# TYPE a gauge\na one\n')).toThrow(/bad value/);
  });
});
