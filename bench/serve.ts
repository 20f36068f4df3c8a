/**
 * A real static HTTP server on 127.0.0.1 for the benchmarks, in its own
 * process so that serving costs nothing inside the process being measured:
 * Debian's nginx (sendfile) with a generated config when it is installed,
 * else `static-server.ts` under node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/base/free-port.ts';

export interface Served {
  kind: 'nginx' | 'node';
  origin: string;
  url(file: string): string;
  /** The same file through a bandwidth cap (nginx `limit_rate`), as from a real network; undefined without nginx. */
  slowUrl?(file: string, rate: string): string;
  close(): Promise<void>;
}

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));


/** Serves the files of `root` until close(); `rates` are nginx limit_rate values (bytes/s, k/m suffixes) that slowUrl offers. */
export async function serveDir(root: string, workDir: string, rates: string[] = ['100m']): Promise<Served> {
  const port = await freePort();
  let child: ChildProcess;
  let kind: Served['kind'];
  if (NGINX && process.env.BENCH_SERVER !== 'node') {
    kind = 'nginx';
    const prefix = path.join(workDir, 'nginx');
    await mkdir(path.join(prefix, 'tmp'), { recursive: true });
    const conf = path.join(prefix, 'nginx.conf');
    await writeFile(conf, `daemon off;
master_process off;
worker_processes 1;
user root;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
${rates.map((r) => `    location /slow-${r}/ {\n      alias ${root}/;\n      limit_rate ${r};\n    }\n`).join('')}  }
}
`);
    child = spawn(NGINX, ['-p', prefix, '-c', conf], { stdio: ['ignore', 'inherit', 'inherit'] });
  } else {
    kind = 'node';
    const script = fileURLToPath(new URL('./static-server.js', import.meta.url));
    child = spawn(process.execPath, [script, root, String(port)], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const origin = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const req = http.get(`${origin}/`, (res) => { res.resume(); resolve(true); });
      req.on('error', () => resolve(false));
    });
    if (up) break;
    if (i > 100 || child.exitCode !== null) throw new Error(`Cannot start the ${kind} bench server on ${origin}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const rel = (file: string) => path.relative(root, file).split(path.sep).map(encodeURIComponent).join('/');
  return {
    kind,
    origin,
    url: (file) => `${origin}/${rel(file)}`,
    slowUrl: kind === 'nginx' ? (file, rate) => `${origin}/slow-${rate}/${rel(file)}` : undefined,
    close: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
