/** Process entry: runs the CLI and sets the exit code. */
import { findCommandWord, main } from './cli/cli.ts';
import { setClosedPipeHandler } from './report/log.ts';

// A closed pipe (`lander logs | head -1`, `lander status | less` quit early) is a reader that has
// seen enough, not a failure: leave quietly with 0. The daemon instead stops gracefully (its
// server must not be orphaned), as on SIGTERM.
const daemon = findCommandWord(process.argv.slice(2)).word === 'run';
let pipeClosed = false;
const onClosedPipe = () => {
  if (pipeClosed) return;
  pipeClosed = true;
  if (daemon) process.kill(process.pid, 'SIGTERM');
  else process.exit(0);
};
setClosedPipeHandler(onClosedPipe);
for (const s of [process.stdout, process.stderr]) {
  s.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') onClosedPipe();
    else throw err;
  });
}
process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
  // A log destination (pino's) that hit the closed pipe.
  if (err.code === 'EPIPE') return onClosedPipe();
  process.stderr.write(`lander: unexpected error: ${err.stack ?? err.message}\n`);
  process.exit(1);
});

process.exitCode = await main(process.argv.slice(2));

// Every wait has a bound, exiting included: should a stray handle (a socket, a child's pipe) keep the
// loop alive after the command finished, leave anyway rather than hang a service manager's stop.
setTimeout(() => {
  process.stderr.write('lander: something kept the process alive 5 s after the command finished; exiting\n');
  process.exit();
}, 5000).unref();
