/** Positional file writes that loop over short writes. */
import type { FileHandle } from 'node:fs/promises';

/** Writes all of `bufs` at `position`, looping over short writes. */
export async function writeAllAt(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let pos = position;
  if (bufs.length > 1) {
    // One writev, no copy; a short one (rare) finishes with plain writes of the rest.
    const total = bufs.reduce((a, b) => a + b.length, 0);
    const { bytesWritten } = await fh.writev(bufs, pos);
    if (bytesWritten === total) return;
    const rest = Buffer.concat(bufs).subarray(bytesWritten);
    return writeAllAt(fh, [rest], pos + bytesWritten);
  }
  for (const buf of bufs) {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos);
      off += bytesWritten;
      pos += bytesWritten;
    }
  }
}
