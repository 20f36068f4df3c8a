/**
 * A strict per-connection cap for the capped-link row: a TCP relay in front
 * of the bench's nginx that lets each client connection receive at most
 * `rate` bytes/s (token bucket, `burst` bytes of credit), however many
 * requests it carries. nginx's own `limit_rate` is per request and grants
 * each request one second of credit up front (`limit_rate * (now - start +
 * 1)`): a 1.4 MiB Range request rides entirely inside that credit, so a
 * segmented client is barely capped there. Behind this relay it is: 8
 * connections at 10 MB/s are 80 MB/s, for lander and aria2c alike.
 */
import net from 'node:net';

export interface Throttle {
  port: number;
  close(): Promise<void>;
}

export async function startThrottle(upstreamPort: number, rateBytesPerSec: number, burst = 256 * 1024): Promise<Throttle> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(upstreamPort, '127.0.0.1');
    sockets.add(client).add(up);
    client.on('close', () => { sockets.delete(client); up.destroy(); });
    up.on('close', () => { sockets.delete(up); client.destroy(); });
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.pipe(up);
    let tokens = burst;
    let last = performance.now();
    let waiting = false;
    const refill = () => {
      const now = performance.now();
      tokens = Math.min(burst, tokens + ((now - last) / 1000) * rateBytesPerSec);
      last = now;
    };
    up.on('data', (chunk: Buffer) => {
      refill();
      tokens -= chunk.length;
      if (!client.write(chunk)) {
        up.pause();
        client.once('drain', () => { if (!waiting) up.resume(); });
      }
      if (tokens < 0 && !waiting) {
        waiting = true;
        up.pause();
        setTimeout(() => {
          waiting = false;
          refill();
          if (!client.writableNeedDrain) up.resume();
        }, Math.ceil((-tokens / rateBytesPerSec) * 1000));
      }
    });
    up.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
