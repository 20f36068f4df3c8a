/** Process entry: runs the CLI and sets the exit code. */
import { main } from './cli/cli.ts';

process.exitCode = await main(process.argv.slice(2));

// Every wait has a bound, exiting included: should a stray handle (a socket, a child's pipe) keep the
// loop alive after the command finished, leave anyway rather than hang a service manager's stop.
setTimeout(() => {
  process.stderr.write('lander: something kept the process alive 5 s after the command finished; exiting\n');
  process.exit();
}, 5000).unref();
