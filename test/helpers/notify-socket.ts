/**
 * A fake systemd NOTIFY_SOCKET: a unix datagram socket that records every
 * message. Node cannot bind a unix datagram socket, so python3 (on every
 * Debian machine) listens and prints each datagram as a JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"listening": True}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"message": data.decode("utf-8", "replace")}), flush=True)
`;

export interface NotifySocket {
  path: string;
  /** Every datagram so far, each split into its KEY=VALUE lines. */
  messages(): string[][];
  close(): Promise<void>;
}

export async function listenNotifySocket(dir: string): Promise<NotifySocket> {
  const socketPath = path.join(dir, 'notify.sock');
  const child: ChildProcess = spawn('python3', ['-c', LISTENER, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[][] = [];
  let buf = '';
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`python3 listener exited (${code})`)));
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        const r = JSON.parse(l) as { listening?: boolean; message?: string };
        if (r.listening) resolve();
        if (r.message !== undefined) messages.push(r.message.split('\n'));
      }
    });
  });
  return {
    path: socketPath,
    messages: () => messages,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    },
  };
}
