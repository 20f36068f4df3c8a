/**
 * `WWW-Authenticate` challenges from a registry (pure), as the distribution
 * token spec describes them:
 * `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:lander/server:pull"`
 * or `Basic realm="Registry Realm"`.
 */

export interface Challenge {
  /** Lower-case: `bearer` or `basic`. */
  scheme: string;
  /** Auth parameters, keys lower-case, quoted values unescaped. */
  params: Record<string, string>;
}

/**
 * The challenges in one header value. Several may be listed, separated by
 * commas like their parameters; a token with no `=` after it starts a new one.
 *
 * @example parseChallenges('Bearer realm="https://a/token",service="reg"') // → [{ scheme: 'bearer', params: { realm: 'https://a/token', service: 'reg' } }]
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const s = header;
  const skip = (re: RegExp) => { while (i < s.length && re.test(s[i]!)) i++; };
  for (let guard = 0; i < s.length && guard < 64; guard++) {
    skip(/[\s,]/);
    const scheme = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+/.exec(s.slice(i))?.[0];
    if (!scheme) break;
    i += scheme.length;
    const c: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(c);
    for (let p = 0; p < 64; p++) {
      skip(/[\s,]/);
      const m = /^([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*=\s*/.exec(s.slice(i));
      if (!m) break; // the next challenge's scheme (or a token68, which registries do not send)
      i += m[0].length;
      let value = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          value += s[i++];
        }
        i++;
      } else {
        const v = /^[^\s,]*/.exec(s.slice(i))![0];
        value = v;
        i += v.length;
      }
      c.params[m[1]!.toLowerCase()] = value;
    }
  }
  return out;
}
