/**
 * A control for event-loop delay: an idle process that only measures its
 * own event-loop delay while a benchmark runs beside it. Delays it sees come
 * from the machine (scheduling on shared cores), not from the code measured.
 * Prints `{"p50","p99","max"}` (ms beyond the 10 ms resolution) on SIGTERM.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const RESOLUTION_MS = 10;
const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
h.enable();
const keepAlive = setInterval(() => {}, 1 << 30);
process.on('SIGTERM', () => {
  h.disable();
  clearInterval(keepAlive);
  const excess = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  process.stdout.write(JSON.stringify({ p50: excess(h.percentile(50)), p99: excess(h.percentile(99)), max: excess(h.max) }) + '\n');
  process.exit(0);
});
process.stdout.write('ready\n');
