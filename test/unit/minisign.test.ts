/**
 * minisign format, known answers: RFC 8032 and RFC 7693 vectors, and a key
 * pair and signatures made once by the real `minisign` 0.11 (`-G -W`, `-S`,
 * `-S -l`) over the 6 bytes "hello\n". Ed25519 is deterministic, so lander
 * must reproduce minisign's files byte for byte.
 */
import { describe, expect, it } from 'vitest';
import {
  blake2b512, formatPublicKey, formatSecretKey, formatSignature, generateKeyPair, keyIdHex, landerTrustedComment,
  parsePublicKey, parseSecretKey, parseSignature, parseTrustedComment, publicKeyLine, signMessage, verifySignature,
} from '../../src/config/minisign.ts';
import { SignatureError } from '../../src/base/errors.ts';

const MESSAGE = Buffer.from('hello\n');
const PUB = 'untrusted comment: minisign public key 580CD6611EC94131\nRWQxQckeYdYMWDMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+q\n';
const KEY = 'untrusted comment: minisign encrypted secret key\nRWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMUHJHmHWDFiRx4fujghaH+NpakhemmIHW7AxACbeWR4Kq9dslKQsxjMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+qAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n';
/** `minisign -S -t 'timestamp:1 file:f sequence:3'` (prehashed, the default). */
const SIG_ED = 'untrusted comment: signature from minisign secret key\nRUQxQckeYdYMWIIgqFrnmt1qb7m9/1dG8Uj54glylPUWWJ1pAj7jqF61y4nRjB3/RWUlq/xXf4XG801lk76HEiJm8Ha5Cs+j1Q8=\ntrusted comment: timestamp:1 file:f sequence:3\ncADWg2RhGiDoaU1vioyXiJICI6kWXhW/AkXO1O1HCJAN+WnZmqa1OZp3+VZzxq9M2Wb82ILc3uCFM1w09SXSDQ==\n';
/** `minisign -S -l` with its default trusted comment. */
const SIG_LEGACY = 'untrusted comment: signature from minisign secret key\nRWQxQckeYdYMWG4tfglHOd7S/zOyeyyhIfEI3/cSTENdTdO6OKqzFCqpZDhvII5OtZ2e22yPLsTVHZpDoHvqa0AOuA7Ww9Lgrww=\ntrusted comment: timestamp:1795917540\tfile:f\nnZ4t5t+pI5Q1RLx622zfeAWMBOucGJ11zHYDuqGjhm6JpVL2p/YZ7qT7wT2PajCFlG5xmES4tlheZf8Y/uReCw==\n';

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SignatureError);
    expect((err as SignatureError).code).toBe('ERR_SIGNATURE');
    return (err as SignatureError).data.reason as string;
  }
  throw new Error('expected a SignatureError');
}

describe('primitives', () => {
  it('BLAKE2b-512 matches RFC 7693 appendix A', () => {
    expect(blake2b512(Buffer.from('abc')).toString('hex')).toBe('ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923');
  });

  it('Ed25519 matches RFC 8032 test 1 (legacy form signs the message itself)', () => {
    const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
    const publicKey = Buffer.from('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', 'hex');
    const s = signMessage(Buffer.alloc(0), { keyId: Buffer.alloc(8), seed, publicKey }, { trustedComment: 't', legacy: true });
    expect(s.signature.toString('hex')).toBe('e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b');
  });
});

describe('keys', () => {
  it('reads a minisign public key file and the bare key line alike', () => {
    const k = parsePublicKey(PUB);
    expect(keyIdHex(k.keyId)).toBe('580CD6611EC94131');
    expect(parsePublicKey('RWQxQckeYdYMWDMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+q')).toEqual(k);
    expect(formatPublicKey(k)).toBe(PUB);
    expect(publicKeyLine(k)).toBe('RWQxQckeYdYMWDMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+q');
  });

  it('reads an unencrypted minisign secret key and writes it back byte for byte', () => {
    const sk = parseSecretKey(KEY);
    expect(sk.publicKey).toEqual(parsePublicKey(PUB).publicKey);
    expect(formatSecretKey(sk).split('\n')[1]).toBe(KEY.split('\n')[1]);
  });

  it('refuses an encrypted secret key with a way out, and malformed keys', () => {
    const raw = Buffer.from(KEY.split('\n')[1]!, 'base64');
    raw.write('Sc', 2, 'latin1');
    expect(reason(() => parseSecretKey(raw.toString('base64')))).toBe('encrypted');
    expect(() => parseSecretKey(raw.toString('base64'))).toThrow(/minisign -C -W/);
    const mismatched = Buffer.from(KEY.split('\n')[1]!, 'base64');
    mismatched[100] ^= 1;
    expect(reason(() => parseSecretKey(mismatched.toString('base64')))).toBe('malformed');
    expect(reason(() => parsePublicKey(''))).toBe('malformed');
    expect(reason(() => parsePublicKey('RWQxQckeYdYMWDMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+'))).toBe('malformed');
    expect(reason(() => parsePublicKey('RWQxQckeYdYMWDMpuH8E6UCeKID/2xklmTdVf0kHFtjxH0qL5Trlf9+q!'))).toBe('malformed');
  });

  it('generates key pairs that sign and verify', () => {
    const sk = generateKeyPair();
    expect(sk.keyId).toHaveLength(8);
    const again = parseSecretKey(formatSecretKey(sk));
    expect(again).toEqual(sk);
    const sig = formatSignature(signMessage(MESSAGE, again, { trustedComment: 'x' }));
    expect(verifySignature(MESSAGE, sig, parsePublicKey(formatPublicKey(sk))).algorithm).toBe('ED');
  });
});

describe('signatures', () => {
  const pub = parsePublicKey(PUB);
  const sk = parseSecretKey(KEY);

  it('verifies signatures made by minisign, prehashed and legacy', () => {
    expect(verifySignature(MESSAGE, SIG_ED, pub)).toEqual({ algorithm: 'ED', trustedComment: 'timestamp:1 file:f sequence:3', keyId: '580CD6611EC94131' });
    expect(verifySignature(MESSAGE, SIG_LEGACY, pub)).toEqual({ algorithm: 'Ed', trustedComment: 'timestamp:1795917540\tfile:f', keyId: '580CD6611EC94131' });
  });

  it('reproduces minisign signatures byte for byte', () => {
    const untrustedComment = 'signature from minisign secret key';
    expect(formatSignature(signMessage(MESSAGE, sk, { trustedComment: 'timestamp:1 file:f sequence:3', untrustedComment }))).toBe(SIG_ED);
    expect(formatSignature(signMessage(MESSAGE, sk, { trustedComment: 'timestamp:1795917540\tfile:f', untrustedComment, legacy: true }))).toBe(SIG_LEGACY);
  });

  it('accepts CRLF line ends and a missing final newline', () => {
    expect(verifySignature(MESSAGE, SIG_ED.replaceAll('\n', '\r\n'), pub).algorithm).toBe('ED');
    expect(verifySignature(MESSAGE, SIG_ED.trimEnd(), pub).algorithm).toBe('ED');
  });

  it('says which check failed', () => {
    expect(reason(() => verifySignature(Buffer.from('hello!'), SIG_ED, pub))).toBe('signature');
    expect(reason(() => verifySignature(Buffer.from('hello!'), SIG_LEGACY, pub))).toBe('signature');
    expect(reason(() => verifySignature(MESSAGE, SIG_ED.replace('sequence:3', 'sequence:4'), pub))).toBe('trusted-comment');
    expect(reason(() => verifySignature(MESSAGE, SIG_ED, parsePublicKey(formatPublicKey(generateKeyPair()))))).toBe('key-id');
    // Same key id, other key: the signature itself fails.
    expect(reason(() => verifySignature(MESSAGE, SIG_ED, { keyId: pub.keyId, publicKey: generateKeyPair().publicKey }))).toBe('signature');
    // The algorithm bytes are covered by nothing but the check itself: flipping ED to Ed must not verify.
    const flipped = SIG_ED.split('\n');
    const b = Buffer.from(flipped[1]!, 'base64');
    b.write('Ed', 0, 'latin1');
    flipped[1] = b.toString('base64');
    expect(reason(() => verifySignature(MESSAGE, flipped.join('\n'), pub))).toBe('signature');
    expect(reason(() => parseSignature(SIG_ED.split('\n').slice(0, 3).join('\n')))).toBe('malformed');
    expect(reason(() => parseSignature(SIG_ED.replace('trusted comment: ', 'trusted: ')))).toBe('malformed');
    expect(reason(() => parseSignature(SIG_ED.replace('untrusted comment: ', '')))).toBe('malformed');
    expect(reason(() => parseSignature('<html>404</html>'))).toBe('malformed');
    const unknownAlg = SIG_ED.split('\n');
    const u = Buffer.from(unknownAlg[1]!, 'base64');
    u.write('XX', 0, 'latin1');
    unknownAlg[1] = u.toString('base64');
    expect(() => parseSignature(unknownAlg.join('\n'))).toThrow(/unknown algorithm "XX"/);
  });

  it('refuses comments that cannot be one line', () => {
    expect(reason(() => signMessage(MESSAGE, sk, { trustedComment: 'a\nb' }))).toBe('malformed');
    expect(reason(() => signMessage(MESSAGE, sk, { trustedComment: 'x'.repeat(1025) }))).toBe('malformed');
  });
});

describe('trusted comments', () => {
  it('reads fields separated by tabs or spaces', () => {
    expect(parseTrustedComment('timestamp:1795917547\tfile:f\thashed')).toEqual({ timestamp: '1795917547', file: 'f' });
    expect(parseTrustedComment('timestamp:1 file:stable.json sequence:7')).toEqual({ timestamp: '1', file: 'stable.json', sequence: '7' });
    expect(reason(() => parseTrustedComment('sequence:7 sequence:9'))).toBe('trusted-comment');
  });

  it('writes lander\'s format', () => {
    expect(landerTrustedComment({ timestamp: 1_767_225_600_123, file: 'stable.json', sequence: 7 })).toBe('timestamp:1767225600\tfile:stable.json\tsequence:7');
    expect(landerTrustedComment({ timestamp: 1_767_225_600_000, file: 'my file.json' })).toBe('timestamp:1767225600\tfile:my_file.json');
  });
});
