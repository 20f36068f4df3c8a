/**
 * Pipes a response body into a writable and keeps what was received when
 * the body breaks. `stream.pipeline` destroys the destination on a source
 * error, and a destroyed Writable drops the chunks it buffered (up to its
 * highWaterMark, 1 MiB for the `.part` feed): a resume then asked for them
 * again. Here a broken source ends the destination instead, so it writes out
 * everything it holds, and only then is the source's error passed on. A
 * failing destination destroys the source and wins.
 */
import { finished, type Readable, type Writable } from 'node:stream';

export function pipeKeepingReceived(source: Readable, dest: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let sourceError: Error | undefined;
    finished(source, (err) => {
      if (!err) return; // a clean end: pipe() ends the destination
      sourceError = err;
      source.unpipe(dest);
      if (!dest.destroyed && !dest.writableEnded) dest.end();
    });
    // Called once: the destination's end (after the buffered chunks) or its failure.
    finished(dest, (err) => {
      if (err) source.destroy();
      const failure = err ?? sourceError;
      if (failure) reject(failure);
      else resolve();
    });
    source.pipe(dest);
  });
}
