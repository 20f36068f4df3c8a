/** Process entry: runs the CLI and sets the exit code. */
import { main } from './cli.ts';

process.exitCode = await main(process.argv.slice(2));
