import { describe, expect, it } from 'vitest';
import { noProxyMatches, proxyFor } from '../../src/fetch/proxy.ts';

describe('proxyFor', () => {
  const env = { HTTPS_PROXY: 'http://proxy:3128', HTTP_PROXY: 'proxy:8080' };
  it('picks the proxy by scheme, adding http:// to a bare host:port', () => {
    expect(proxyFor(new URL('https://github.com/a'), env)?.href).toBe('http://proxy:3128/');
    expect(proxyFor(new URL('http://example.com/a'), env)?.href).toBe('http://proxy:8080/');
    expect(proxyFor(new URL('file:///tmp/a'), env)).toBeUndefined();
    expect(proxyFor(new URL('https://github.com/a'), {})).toBeUndefined();
  });
  it('prefers the lower-case variables, as curl does', () => {
    expect(proxyFor(new URL('https://x.org/'), { ...env, https_proxy: 'http://low:1' })?.host).toBe('low:1');
  });
  it('never proxies loopback unless NO_PROXY is set, even empty', () => {
    expect(proxyFor(new URL('http://127.0.0.1:9/a'), env)).toBeUndefined();
    expect(proxyFor(new URL('http://localhost:9/a'), env)).toBeUndefined();
    expect(proxyFor(new URL('http://127.0.0.1:9/a'), { ...env, NO_PROXY: '' })?.host).toBe('proxy:8080');
  });
  it('refuses a proxy URL it cannot speak to', () => {
    expect(() => proxyFor(new URL('https://x.org/'), { HTTPS_PROXY: 'socks5://p:1080', NO_PROXY: '' })).toThrow(/only http:\/\/ and https:\/\/ proxies are supported, got socks5:\/\/p:1080/);
  });
  it('takes an https:// proxy (TLS to the proxy) for both schemes', () => {
    expect(proxyFor(new URL('https://x.org/'), { HTTPS_PROXY: 'https://p.example:8443', NO_PROXY: '' })?.href).toBe('https://p.example:8443/');
    expect(proxyFor(new URL('http://x.org/'), { HTTP_PROXY: 'https://p.example', NO_PROXY: '' })?.protocol).toBe('https:');
  });
});

describe('noProxyMatches', () => {
  it.each([
    ['github.com', '443', '*', true],
    ['github.com', '443', 'github.com', true],
    ['objects.github.com', '443', 'github.com', true],
    ['objects.github.com', '443', '.github.com', true],
    ['objects.github.com', '443', '*.github.com', true],
    ['notgithub.com', '443', 'github.com', false],
    ['GitHub.COM', '443', 'github.com', true],
    ['github.com', '443', 'github.com:8443', false],
    ['github.com', '8443', 'github.com:8443', true],
    ['10.1.2.3', '80', '10.0.0.0/8', true],
    ['11.1.2.3', '80', '10.0.0.0/8', false],
    ['::1', '80', '::1', true],
    ['fd12:3456::1', '443', 'fd00::/8', true],
    ['fe80::1', '443', 'fd00::/8', false],
    ['2001:db8:abcd:12::7', '443', '2001:db8:abcd::/48', true],
    ['2001:db8:abce::7', '443', '2001:db8:abcd::/48', false],
    ['[2001:db8::1]', '443', '2001:db8::/32', true],
    ['::1', '80', '::1/128', true],
    ['::2', '80', '::1/128', false],
    ['::ffff:10.1.2.3', '80', '::ffff:10.0.0.0/104', true],
    ['2001:db8::1', '80', '::/0', true],
    ['10.1.2.3', '80', 'fd00::/8', false],
    ['fd00::1', '80', '10.0.0.0/8', false],
    ['[::1]', '80', '[::1]:80', true],
    ['127.0.0.1', '80', 'localhost, 127.0.0.1', true],
    ['127.0.0.1', '80', '', false],
  ])('%s:%s in %j -> %s', (host, port, list, want) => {
    expect(noProxyMatches(host, port, list)).toBe(want);
  });
});
