/**
 * A throwaway CA and a leaf for 127.0.0.1 signed by it, made with openssl in
 * `dir`: for https origins and proxies on loopback, trusted by a lander child
 * through NODE_EXTRA_CA_CERTS (Node) or DENO_CERT (Deno). A CA, not a
 * self-signed leaf: rustls, under Deno, refuses a leaf as its own anchor.
 */
import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface TestCa {
  /** The CA certificate's path, for NODE_EXTRA_CA_CERTS / DENO_CERT. */
  caPath: string;
  keyPath: string;
  certPath: string;
}

export async function makeTestCa(dir: string, cn = 'lander test CA'): Promise<TestCa> {
  const w = (f: string) => path.join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-keyout', w('ca.key'), '-out', w('ca.pem'));
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', w('key.pem'), '-out', w('leaf.csr'));
  await writeFile(w('leaf.ext'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  ssl('x509', '-req', '-in', w('leaf.csr'), '-CA', w('ca.pem'), '-CAkey', w('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', w('leaf.ext'), '-out', w('cert.pem'));
  return { caPath: w('ca.pem'), keyPath: w('key.pem'), certPath: w('cert.pem') };
}
