import { describe, expect, it } from 'vitest';
import { parseSha256Sidecar } from '../../src/fetch/sidecar.ts';
import { DigestUnavailableError } from '../../src/base/errors.ts';

const hex = 'ab'.repeat(32);

describe('parseSha256Sidecar', () => {
  it('reads "<hex>  <name>" (sha256sum text mode)', () => {
    expect(parseSha256Sidecar(`${hex}  cuda-libs-cu128-v1.tar.gz\n`, 'cuda-libs-cu128-v1.tar.gz')).toBe(hex);
  });
  it('reads "<hex> *<name>" (binary mode)', () => {
    expect(parseSha256Sidecar(`${hex} *a.tar.gz`, 'a.tar.gz')).toBe(hex);
  });
  it('reads a bare hex digest and lowercases it', () => {
    expect(parseSha256Sidecar(`${hex.toUpperCase()}\r\n`, 'a.tar.gz')).toBe(hex);
  });
  it('accepts a name with a ./ or folder prefix', () => {
    expect(parseSha256Sidecar(`${hex}  ./dist/a.tar.gz`, 'a.tar.gz')).toBe(hex);
  });
  it('accepts any name when none is expected', () => {
    expect(parseSha256Sidecar(`${hex}  other.tar.gz`)).toBe(hex);
  });
  it('rejects a sidecar for another file', () => {
    expect(() => parseSha256Sidecar(`${hex}  other.tar.gz`, 'a.tar.gz')).toThrow(/not "a.tar.gz"/);
  });
  it.each([
    ['empty', ''],
    ['HTML error page', '<html><body>Not Found</body></html>'],
    ['short hex', 'abcd  a.tar.gz'],
    ['non-hex', `${'zz'.repeat(32)}  a.tar.gz`],
    ['two lines', `${hex}  a.tar.gz\n${hex}  b.tar.gz`],
    ['65 hex digits', `${hex}a  a.tar.gz`],
  ])('throws DigestUnavailableError for %s', (_what, text) => {
    expect(() => parseSha256Sidecar(text, 'a.tar.gz')).toThrow(DigestUnavailableError);
    try { parseSha256Sidecar(text, 'a.tar.gz'); } catch (e) { expect((e as DigestUnavailableError).code).toBe('ERR_DIGEST_UNAVAILABLE'); }
  });
});
