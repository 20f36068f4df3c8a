/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a server that is
 * started (and restarted) on a fixed port: the GPU stand-in in the demo,
 * benches and tests.
 *
 * The port is taken from below the kernel's ephemeral range, not by
 * listening on 0. A port from that range is also what every outgoing
 * connection on the machine picks as its local port: while the server is
 * down between two generations, a client (a health probe, another process)
 * can take it, so the new server cannot bind, or a probe to the empty port
 * connects to itself (TCP simultaneous open) and reads its own request back.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** The lowest ephemeral port (Linux: /proc/sys/net/ipv4/ip_local_port_range; elsewhere the IANA 49152). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 2048) return low;
  } catch {
    // not Linux, or /proc is not readable: the IANA range
  }
  return 49152;
}

function tryListen(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => {
      const got = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(got));
    });
  });
}

export async function freePort(): Promise<number> {
  const high = ephemeralLow() - 1;
  const low = Math.max(1024, high - 12_000);
  for (let i = 0; i < 50; i++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if ((await tryListen(port)) === port) return port;
  }
  // A crowded range: any free port, ephemeral or not.
  const port = await tryListen(0);
  if (port === undefined) throw new Error('no free TCP port on 127.0.0.1');
  return port;
}
