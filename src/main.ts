/** Process entry: runs the CLI and sets the exit code. */
import { permissionMessage } from './base/runtime-permission.ts';

// A closed pipe (`lander logs | head -1`, `lander status | less` quit early) is a reader that has
// seen enough, not a failure: leave quietly with 0. The daemon instead stops gracefully (its
// server must not be orphaned), as on SIGTERM.
let daemon = false;
let pipeClosed = false;
const onClosedPipe = () => {
  if (pipeClosed) return;
  pipeClosed = true;
  if (daemon) process.kill(process.pid, 'SIGTERM');
  else process.exit(0);
};
for (const s of [process.stdout, process.stderr]) {
  s.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') onClosedPipe();
    else throw err;
  });
}
const fatal = (err: NodeJS.ErrnoException) => {
  // A log destination (pino's) that hit the closed pipe.
  if (err.code === 'EPIPE') return onClosedPipe();
  const denied = permissionMessage(err);
  process.stderr.write(denied ? `lander: ${denied}\n` : `lander: unexpected error: ${err.stack ?? err.message}\n`);
  process.exit(denied ? 2 : 1);
};
process.on('uncaughtException', fatal);

// Loaded here, not imported above: under Deno a missing permission fails while modules load
// (pino reads the environment and the host name), and must be said in lander's words.
let cli: typeof import('./cli/cli.ts');
try {
  cli = await import('./cli/cli.ts');
  (await import('./report/log.ts')).setClosedPipeHandler(onClosedPipe);
} catch (err) {
  fatal(err as NodeJS.ErrnoException);
  throw err;
}
daemon = cli.findCommandWord(process.argv.slice(2)).word === 'run';
process.exitCode = await cli.main(process.argv.slice(2));

// Every wait has a bound, exiting included: should a stray handle (a socket, a child's pipe) keep the
// loop alive after the command finished, leave anyway rather than hang a service manager's stop.
setTimeout(() => {
  process.stderr.write('lander: something kept the process alive 5 s after the command finished; exiting\n');
  process.exit();
}, 5000).unref();
