/**
 * HTTP(S)_PROXY and NO_PROXY for every download (archives, sidecars,
 * manifests), the same under Node and Deno: plain http goes to the proxy as
 * an absolute-URI request; https goes through a CONNECT tunnel, with TLS to
 * the origin inside it (the proxy never sees the bytes in clear).
 *
 * The proxy itself may be `http://` or `https://` (TLS to the proxy, trusted
 * like any server; for an https origin that makes TLS inside TLS).
 *
 * NO_PROXY: comma- or space-separated; `*` matches every host; `example.com`
 * and `.example.com` match it and its subdomains; `host:port` matches that
 * port only; IPv4 and IPv6 CIDR (`10.0.0.0/8`, `fd00::/8`) match addresses. When NO_PROXY is
 * not set at all, loopback (`localhost`, `127.0.0.1`, `::1`) is never proxied;
 * set it, even empty, to decide yourself.
 */
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { DownloadError } from '../base/errors.ts';

type Env = Record<string, string | undefined>;

const DEFAULT_NO_PROXY = 'localhost,127.0.0.1,::1';

/** The proxy for `url`, or undefined to connect directly. */
export function proxyFor(url: URL, env: Env = process.env): URL | undefined {
  // An empty variable is unset (a way to turn a proxy off); NO_PROXY set empty is a choice, kept.
  const raw = url.protocol === 'https:' ? (env.https_proxy || env.HTTPS_PROXY) : url.protocol === 'http:' ? (env.http_proxy || env.HTTP_PROXY) : undefined;
  if (!raw) return undefined;
  const noProxy = env.no_proxy || env.NO_PROXY || (env.no_proxy ?? env.NO_PROXY ?? DEFAULT_NO_PROXY);
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (noProxyMatches(url.hostname, port, noProxy)) return undefined;
  let proxy: URL;
  try {
    proxy = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch (cause) {
    throw new DownloadError('ERR_PROXY', `Cannot download ${url.href}: the proxy setting ${JSON.stringify(raw)} is not a URL`, { cause, data: { url: url.href } });
  }
  if (proxy.protocol !== 'http:' && proxy.protocol !== 'https:') {
    throw new DownloadError('ERR_PROXY', `Cannot download ${url.href}: only http:// and https:// proxies are supported, got ${proxy.protocol}//${proxy.host}`, { data: { url: url.href, proxy: proxy.host } });
  }
  return proxy;
}

/** A connection to the proxy itself: TCP for an http:// proxy, TLS for an https:// one. */
export function connectToProxy(proxy: URL): net.Socket {
  if (proxy.protocol === 'https:') {
    const host = proxy.hostname.replace(/^\[|\]$/g, '');
    return tls.connect({ host, port: Number(proxy.port || 443), ...(net.isIP(host) ? {} : { servername: host }), ALPNProtocols: ['http/1.1'] });
  }
  return net.connect({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(proxy.port || 80) });
}

/** True when `host` (and `port`) is exempt from proxying under the NO_PROXY value `list`. */
export function noProxyMatches(host: string, port: string, list: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '').replace(/\.$/, '');
  for (const item of list.split(/[\s,]+/)) {
    let e = item.trim().toLowerCase();
    if (!e) continue;
    if (e === '*') return true;
    let entryPort: string | undefined;
    const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(e) ?? (e.split(':').length === 2 ? /^([^:]+):(\d+)$/.exec(e) : null);
    if (m) {
      e = m[1]!;
      entryPort = m[2];
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    if (e.includes('/')) {
      if (net.isIPv4(h) ? inCidr4(h, e) : net.isIPv6(h) && inCidr6(h, e)) return true;
      continue;
    }
    e = e.replace(/^\*/, '').replace(/^\./, '');
    if (h === e || h.endsWith(`.${e}`)) return true;
  }
  return false;
}

function inCidr4(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  if (!net.isIPv4(base ?? '') || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const n = (s: string) => s.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((n(ip) & mask) >>> 0) === ((n(base!) & mask) >>> 0);
}

/** The 128 bits of an IPv6 address as eight 16-bit groups (`::` and a trailing IPv4 expanded), or undefined. */
function ipv6Groups(ip: string): number[] | undefined {
  if (!net.isIPv6(ip)) return undefined;
  let text = ip.replace(/%.*$/, '');
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const o = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const part = (s: string) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const a = part(head);
  const b = tail === undefined ? [] : part(tail);
  const groups = tail === undefined ? a : [...a, ...Array<number>(8 - a.length - b.length).fill(0), ...b];
  return groups.length === 8 ? groups : undefined;
}

function inCidr6(ip: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const bits = Number(bitsText);
  const a = ipv6Groups(ip);
  const b = ipv6Groups(base ?? '');
  if (!a || !b || !Number.isInteger(bits) || bits < 0 || bits > 128) return false;
  for (let i = 0, left = bits; left > 0; i++, left -= 16) {
    const mask = left >= 16 ? 0xffff : (0xffff << (16 - left)) & 0xffff;
    if ((a[i]! & mask) !== (b[i]! & mask)) return false;
  }
  return true;
}

/** `Proxy-Authorization` for credentials in the proxy URL. */
export function proxyAuthHeader(proxy: URL): Record<string, string> {
  if (!proxy.username) return {};
  const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(cred).toString('base64')}` };
}

/**
 * Opens a CONNECT tunnel through `proxy` to `url`'s host and starts TLS to
 * the origin in it. Bounded by `timeoutMs` (the connect timeout) and `signal`.
 */
export function openTunnel(proxy: URL, url: URL, timeoutMs: number, signal?: AbortSignal): Promise<tls.TLSSocket> {
  const target = `${url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname}:${url.port || 443}`;
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    let done = false;
    // No `agent`: with one (even `false`), Node ignores `createConnection`.
    const req = http.request({ method: 'CONNECT', path: target, headers: { host: target, ...proxyAuthHeader(proxy) }, createConnection: () => connectToProxy(proxy) });
    const finish = (err: Error | undefined, sock?: tls.TLSSocket) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        sock?.destroy();
        reject(err);
      } else resolve(sock!);
    };
    const timer = setTimeout(() => finish(Object.assign(new Error(`no tunnel to ${target} through the proxy ${proxy.host} within ${timeoutMs} ms`), { code: 'ERR_CONNECT_TIMEOUT' })), timeoutMs);
    const onAbort = () => finish(signal!.reason instanceof Error ? signal!.reason : new Error(String(signal!.reason)));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish(new Error(`the proxy ${proxy.host} failed: ${err.message}`, { cause: err })));
    req.on('response', (res) => {
      res.resume();
      finish(new Error(`the proxy ${proxy.host} refused the tunnel to ${target} (HTTP ${res.statusCode})`));
    });
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        return finish(new Error(`the proxy ${proxy.host} refused the tunnel to ${target} (HTTP ${res.statusCode})`));
      }
      const sock = tls.connect({ socket, host: url.hostname, ...(net.isIP(url.hostname) ? {} : { servername: url.hostname }), ALPNProtocols: ['http/1.1'] });
      sock.once('secureConnect', () => finish(undefined, sock));
      sock.once('error', (err) => finish(err, sock));
    });
    req.end();
  });
}
