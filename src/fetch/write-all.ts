/** Positional file writes that loop over short writes. */
import type { FileHandle } from 'node:fs/promises';

/** Writes all of `bufs` at `position`, looping over short writes. */
export async function writeAllAt(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let pos = position;
  for (const buf of bufs.length > 1 ? [Buffer.concat(bufs)] : bufs) {
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await fh.write(buf, off, buf.length - off, pos);
      off += bytesWritten;
      pos += bytesWritten;
    }
  }
}
