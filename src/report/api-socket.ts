/**
 * The status API's unix socket file: the only guard of the token-less socket
 * is its file mode, so the path is prepared and checked with care. A stale
 * socket left by a crashed daemon is removed; a live one (another daemon) or
 * anything that is not a socket is never touched.
 */
import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { LanderError } from '../base/errors.ts';

/** sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), NUL included. */
export const MAX_SOCKET_PATH_BYTES = 103;

/** True when something accepts connections on the unix socket at `p` within `timeoutMs`. */
export function socketAnswers(p: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    const done = (v: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    // A listener that accepts but is wedged still holds the path: treat a timeout as "in use".
    const t = setTimeout(() => done(true), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Makes `socketPath` free to listen on: nothing there, or a stale socket
 * (removed). Throws ERR_API_SOCKET for a non-socket file or a path too long,
 * ERR_API_IN_USE when another process answers on it.
 */
export async function prepareSocketPath(socketPath: string): Promise<void> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new LanderError('ERR_API_SOCKET', `Cannot listen on ${socketPath}: a unix socket path may have at most ${MAX_SOCKET_PATH_BYTES} bytes; set a shorter "api.socket"`, { data: { socketPath } });
  }
  let st;
  try {
    st = await lstat(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new LanderError('ERR_API_SOCKET', `Cannot listen on ${socketPath}: ${(err as Error).message}`, { cause: err, data: { socketPath } });
  }
  if (!st.isSocket()) {
    throw new LanderError('ERR_API_SOCKET', `Cannot listen on ${socketPath}: the path exists and is not a socket; lander will not remove it. Remove it or set another "api.socket"`, { data: { socketPath } });
  }
  if (await socketAnswers(socketPath)) {
    throw new LanderError('ERR_API_IN_USE', `Cannot listen on ${socketPath}: another process answers on it (is another lander running with this socket?)`, { data: { socketPath } });
  }
  try {
    await unlink(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new LanderError('ERR_API_SOCKET', `Cannot remove the stale socket ${socketPath}: ${(err as Error).message}`, { cause: err, data: { socketPath } });
    }
  }
}

/**
 * Checks the listening socket is ours and private: a socket, mode 0600, owned
 * by this user. Returns its inode so `close()` removes only the file it made.
 */
export async function verifySocket(socketPath: string): Promise<number> {
  const st = await lstat(socketPath);
  const mode = st.mode & 0o777;
  const uid = process.getuid?.();
  if (!st.isSocket() || mode !== 0o600 || (uid !== undefined && st.uid !== uid)) {
    throw new LanderError('ERR_API_SOCKET', `Cannot secure ${socketPath}: expected a socket with mode 0600 owned by uid ${uid}, found ${st.isSocket() ? 'a socket' : 'not a socket'} with mode ${mode.toString(8).padStart(4, '0')} owned by uid ${st.uid}`, { data: { socketPath, mode, uid: st.uid } });
  }
  return st.ino;
}

/** Removes the socket file if it is still the one this process created (same inode). */
export async function removeOwnSocket(socketPath: string, ino: number | undefined): Promise<void> {
  if (ino === undefined) return;
  try {
    const st = await lstat(socketPath);
    if (st.isSocket() && st.ino === ino) await unlink(socketPath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(addr: string): boolean {
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return addr === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
