/**
 * The `lander` command line. Each command returns an exit code; nothing here
 * calls process.exit, so tests can run commands in-process.
 */
import { parseArgs } from 'node:util';
import { configPathFrom } from '../config/load.ts';
import { createLogger, type Logger } from '../report/log.ts';
import { installCommand } from './commands/install.ts';
import { statusCommand } from './commands/status.ts';
import { controlCommand } from './commands/control.ts';
import { LanderError } from '../base/errors.ts';

const HELP = `lander: keeps a GPU server's components current and runs the server

Usage:
  lander install [--config FILE]          install every component at its desired version, then exit
  lander run     [--config FILE]          install what is missing, then run and supervise the server
  lander status  [--config FILE] [--json] [--watch]
                                          the daemon's status (live with --watch), or the store on disk;
                                          exit 0 healthy, 1 unhealthy, 3 no daemon
  lander logs    [--config FILE] [--follow] [--event NAME]... [--since T] [--level L] [--json] [--file F]
                                          lander's own log (the config's log.file, or piped-in
                                          journalctl -u lander -o cat), one readable line per record
  lander check   [--config FILE]          ask the daemon to re-read its config, poll the manifest, reconcile
  lander restart [--config FILE]          ask the daemon to restart the server on the current generation
  lander rollback [--config FILE]         ask the daemon to swap back to the previous good generation
  lander keygen  --out DIR                write a minisign key pair for signing manifests: DIR/lander.pub, DIR/lander.key (0600)
  lander sign    FILE --key KEYFILE [--trusted-comment TEXT] [--legacy]
                                          write FILE.minisig (minisign format; the trusted comment carries the manifest's sequence)
  lander verify  [--config FILE] [--generation N] [--json]
                                          re-hash a generation (default: current) against its install records
  lander pack <onedir> --out DIR [...]   split a one-folder build into component archives and a manifest
                                          (options: lander pack --help)
  lander push DIR oci://HOST/PREFIX       publish lander pack output to an OCI registry as PREFIX/<component>:<version>
                                          (options: lander push --help)
  lander help

Options:
  --config FILE     config file (default: $LANDER_CONFIG or /etc/lander/lander.json)
  --log-level LVL   fatal|error|warn|info|debug|trace|silent
  --pretty          with run and install: human-readable log lines instead of JSON
  --event NAME      with logs: only this event, or a whole area (server = server.*); repeatable
  --since T         with logs: from a time (2025-06-01T12:00Z) or a duration back (10m, 2h, 1d)
  --follow, -f      with logs: keep printing as the log file grows
  --json            machine-readable output
  --watch           with status: follow the daemon's events until Ctrl-C
  --generation N    with verify: the generation to check

Exit codes: 0 ok, 1 failed (verify: differences found), 2 bad usage or config, 3 no daemon running (check, restart, rollback)
`;

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  log?: Logger;
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  // pack reads no config and has options of its own (src/commands/pack.ts).
  if (argv[0] === 'pack') {
    const { packCommand } = await import('./commands/pack.ts');
    return packCommand(argv.slice(1), { stdout: io.stdout, stderr: io.stderr, ...(io.log ? { log: io.log } : {}) });
  }
  if (argv[0] === 'push') {
    const { pushCommand } = await import('./commands/push.ts');
    return pushCommand(argv.slice(1), { stdout: io.stdout, stderr: io.stderr, ...(io.log ? { log: io.log } : {}) });
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        json: { type: 'boolean', default: false },
        watch: { type: 'boolean', short: 'w', default: false },
        generation: { type: 'string' },
        out: { type: 'string' },
        key: { type: 'string' },
        'trusted-comment': { type: 'string' },
        legacy: { type: 'boolean', default: false },
        'log-level': { type: 'string' },
        pretty: { type: 'boolean', default: false },
        follow: { type: 'boolean', short: 'f', default: false },
        event: { type: 'string', multiple: true },
        since: { type: 'string' },
        level: { type: 'string' },
        file: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    io.stderr.write(`lander: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0] ?? 'help';
  if (values.help || command === 'help') {
    io.stdout.write(HELP);
    return 0;
  }
  const tty = io.stderr.isTTY && !values.json ? io.stderr : undefined;
  // At a terminal the bars and summary speak; JSON lines are for logs and pipes.
  const level = values['log-level'] ?? (tty ? 'warn' : undefined);
  const log = io.log ?? createLogger({ ...(level ? { level } : {}), pretty: values.pretty });
  const configPath = configPathFrom(values.config);
  try {
    switch (command) {
      case 'install':
        return await installCommand({ configPath, log, stderr: io.stderr, ...(tty ? { tty } : {}) });
      case 'run': {
        // Loaded on demand: status, check, restart and rollback need none of the daemon's modules.
        const { runCommand, daemonLogger } = await import('./commands/run.ts');
        return await runCommand({ configPath, log: io.log ?? (await daemonLogger(configPath, { ...(values['log-level'] ? { level: values['log-level'] } : {}), pretty: values.pretty })) });
      }
      case 'logs': {
        const { logsCommand } = await import('./commands/logs.ts');
        const { parseSince } = await import('../report/log-format.ts');
        let sinceMs: number | undefined;
        try {
          sinceMs = values.since !== undefined ? parseSince(values.since) : undefined;
        } catch (err) {
          io.stderr.write(`lander logs: ${(err as Error).message}\n`);
          return 2;
        }
        const events = (values.event ?? []).flatMap((e) => e.split(',')).filter(Boolean);
        return await logsCommand({
          configPath, stdout: io.stdout, stderr: io.stderr, follow: values.follow, json: values.json,
          filter: { events, ...(sinceMs !== undefined ? { sinceMs } : {}), ...(values.level ? { level: values.level } : {}) },
          ...(values.file ? { file: values.file } : {}),
        });
      }
      case 'status':
        return await statusCommand({ configPath, log, stdout: io.stdout, stderr: io.stderr, json: values.json, watch: values.watch, ...(io.stdout.isTTY ? { tty: io.stdout } : {}) });
      case 'verify': {
        const { verifyCommand } = await import('./commands/verify.ts');
        return await verifyCommand({ configPath, log, stdout: io.stdout, stderr: io.stderr, json: values.json, ...(values.generation !== undefined ? { generation: values.generation } : {}) });
      }
      case 'keygen': {
        if (!values.out) return usage(io, 'keygen needs --out DIR');
        const { keygenCommand } = await import('./commands/keygen.ts');
        return await keygenCommand({ out: values.out, stdout: io.stdout });
      }
      case 'sign': {
        if (!positionals[1] || !values.key) return usage(io, 'sign needs FILE and --key KEYFILE');
        const { signCommand } = await import('./commands/sign.ts');
        return await signCommand({ file: positionals[1], key: values.key, legacy: values.legacy, stdout: io.stdout, ...(values['trusted-comment'] !== undefined ? { trustedComment: values['trusted-comment'] } : {}) });
      }
      case 'check':
      case 'restart':
      case 'rollback':
        return await controlCommand(command, { configPath, stdout: io.stdout, stderr: io.stderr, json: values.json });
      default:
        io.stderr.write(`lander: unknown command "${command}"\n\n${HELP}`);
        return 2;
    }
  } catch (err) {
    const code = err instanceof LanderError ? err.code : 'ERR_UNEXPECTED';
    log.error({ event: 'command.failed', command, code, err }, (err as Error).message);
    io.stderr.write(`lander ${command}: ${(err as Error).message}\n`);
    return code === 'ERR_CONFIG' || code === 'ERR_USAGE' ? 2 : 1;
  } finally {
    log.flush?.();
  }
}

function usage(io: CliIo, message: string): number {
  io.stderr.write(`lander: ${message}\n\n${HELP}`);
  return 2;
}
