/**
 * The `lander` command line. Each command returns an exit code; nothing here
 * calls process.exit, so tests can run commands in-process.
 *
 * The streams: stdout carries only a command's result (its table, or its
 * `--json` object); logs and errors go to stderr (`lander run` keeps its logs
 * on stdout, for journald). An error is said once: one line at a terminal
 * (its stack only with `--log-level debug`), or its JSON log record when the
 * logs are JSON.
 */
import { parseArgs } from 'node:util';
import { configPathFrom } from '../config/load.ts';
import { createLogger, type Logger } from '../report/log.ts';
import { LanderError } from '../base/errors.ts';
import { suggest } from '../base/suggest.ts';
import { permissionMessage } from '../base/runtime-permission.ts';
import { COMMANDS, commandHelp, findCommand, globalHelp, type CommandSpec } from './commands-table.ts';
import { interruptedBy } from './interrupt.ts';

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  log?: Logger;
}

type Values = Record<string, unknown>;

/** Every option of every command, to find the command word among flags (`lander --config x status`). */
function allOptions(): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> {
  const all: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const c of COMMANDS) for (const [n, o] of Object.entries(c.options)) all[n] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  return all;
}

/** The command word among the arguments (flags may come first: `lander --config x status`). */
export function findCommandWord(argv: string[]): { index: number; word?: string } {
  const { tokens } = parseArgs({ args: argv, options: allOptions(), strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional');
  return first ? { index: first.index, word: first.value } : { index: -1 };
}

/** `Unknown option '--jsn'` → `unknown option --jsn (did you mean --json?)`. */
function usageHint(spec: CommandSpec, err: Error): string {
  const m = /option '(-{1,2})([^'=]+)/.exec(err.message);
  if (m && /Unknown option/i.test(err.message)) {
    const near = m[1] === '--' ? suggest(m[2]!, Object.keys(spec.options)) : undefined;
    return `unknown option ${m[1]}${m[2]}${near ? ` (did you mean --${near}?)` : ''}`;
  }
  return err.message.replace(/\. To specify a positional argument.*$/s, '');
}

export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const { index, word } = findCommandWord(argv);
  if (word === undefined) {
    if (argv.includes('--help') || argv.includes('-h')) {
      io.stdout.write(globalHelp());
      return 0;
    }
    io.stderr.write(`lander: no command given\n\n${globalHelp()}`);
    return 2;
  }
  const rest = [...argv.slice(0, index), ...argv.slice(index + 1)];
  if (word === 'help') {
    const about = rest.find((a) => !a.startsWith('-'));
    const spec = about ? findCommand(about) : undefined;
    if (about && !OWN_OPTIONS.has(about) && !spec) return unknownCommand(io, about);
    if (about === 'pack') return runPack(['--help'], io);
    if (about === 'push') return runPush(['--help'], io);
    io.stdout.write(spec ? commandHelp(spec) : globalHelp());
    return 0;
  }
  // pack and push read no config and have options of their own (src/cli/commands/pack.ts, push.ts).
  if (word === 'pack') return runPack(rest, io);
  if (word === 'push') return runPush(rest, io);
  const spec = findCommand(word);
  if (!spec) return unknownCommand(io, word);

  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: rest, options: spec.options, allowPositionals: true, strict: true }));
  } catch (err) {
    io.stderr.write(`lander ${word}: ${usageHint(spec, err as Error)}; see lander ${word} --help\n`);
    return 2;
  }
  if (values.help) {
    io.stdout.write(commandHelp(spec));
    return 0;
  }
  const wanted = spec.args ?? [];
  if (positionals.length > wanted.length) {
    io.stderr.write(`lander ${word}: unexpected argument ${JSON.stringify(positionals[wanted.length])}; see lander ${word} --help\n`);
    return 2;
  }
  if (positionals.length < wanted.length) {
    io.stderr.write(`lander ${word}: missing ${wanted.slice(positionals.length).join(' ')}; usage: lander ${spec.usage}\n`);
    return 2;
  }

  const json = values.json === true;
  const logLevel = values['log-level'] as string | undefined;
  const debug = logLevel === 'debug' || logLevel === 'trace';
  // At a terminal the bars and summary speak and logs are readable lines; off one, logs are JSON lines.
  const human = !!io.stderr.isTTY || values.pretty === true;
  const level = logLevel ?? (io.stderr.isTTY && !json ? 'warn' : undefined);
  const log = io.log ?? createLogger({ ...(level ? { level } : {}), pretty: human, fd: 2, stacks: debug });
  const tty = io.stderr.isTTY && !json ? io.stderr : undefined;
  const configPath = configPathFrom(values.config as string | undefined);
  const root = values.root as string | undefined;
  const str = (k: string) => values[k] as string | undefined;
  try {
    switch (word) {
      case 'install': {
        const { installCommand } = await import('./commands/install.ts');
        return await installCommand({ configPath, log, stdout: io.stdout, stderr: io.stderr, json, ...(tty ? { tty } : {}) });
      }
      case 'run': {
        // Loaded on demand: status, check, restart and rollback need none of the daemon's modules.
        const { runCommand, daemonLogger } = await import('./commands/run.ts');
        return await runCommand({ configPath, log: io.log ?? (await daemonLogger(configPath, { ...(logLevel ? { level: logLevel } : {}), pretty: values.pretty === true })) });
      }
      case 'logs': {
        const { logsCommand } = await import('./commands/logs.ts');
        const { parseSince } = await import('../report/log-format.ts');
        let sinceMs: number | undefined;
        try {
          sinceMs = str('since') !== undefined ? parseSince(str('since')!) : undefined;
        } catch (err) {
          io.stderr.write(`lander logs: ${(err as Error).message}\n`);
          return 2;
        }
        const events = ((values.event as string[] | undefined) ?? []).flatMap((e) => e.split(',')).filter(Boolean);
        return await logsCommand({
          configPath, stdout: io.stdout, stderr: io.stderr, follow: values.follow === true, json,
          filter: { events, ...(sinceMs !== undefined ? { sinceMs } : {}), ...(str('level') ? { level: str('level')! } : {}) },
          ...(str('file') ? { file: str('file')! } : {}),
        });
      }
      case 'status': {
        const { statusCommand } = await import('./commands/status.ts');
        return await statusCommand({ configPath, ...(root ? { root } : {}), log, stdout: io.stdout, stderr: io.stderr, json, watch: values.watch === true, ...(io.stdout.isTTY ? { tty: io.stdout } : {}) });
      }
      case 'verify': {
        const { verifyCommand } = await import('./commands/verify.ts');
        return await verifyCommand({ configPath, log, stdout: io.stdout, stderr: io.stderr, json, ...(str('generation') !== undefined ? { generation: str('generation')! } : {}) });
      }
      case 'keygen': {
        if (!str('out')) return usage(io, word, 'needs --out DIR');
        const { keygenCommand } = await import('./commands/keygen.ts');
        return await keygenCommand({ out: str('out')!, stdout: io.stdout });
      }
      case 'sign': {
        if (!str('key')) return usage(io, word, 'needs --key KEYFILE');
        const { signCommand } = await import('./commands/sign.ts');
        return await signCommand({ file: positionals[0]!, key: str('key')!, legacy: values.legacy === true, stdout: io.stdout, ...(str('trusted-comment') !== undefined ? { trustedComment: str('trusted-comment')! } : {}) });
      }
      case 'unmark': {
        const { unmarkCommand } = await import('./commands/unmark.ts');
        return await unmarkCommand({ configPath, ...(root ? { root } : {}), component: positionals[0]!, version: positionals[1]!, log, stdout: io.stdout, stderr: io.stderr });
      }
      case 'check':
      case 'restart':
      case 'rollback': {
        const { controlCommand } = await import('./commands/control.ts');
        return await controlCommand(word, { configPath, ...(root ? { root } : {}), stdout: io.stdout, stderr: io.stderr, json });
      }
      default:
        return unknownCommand(io, word);
    }
  } catch (err) {
    if (interruptedBy() && (err as Error).name === 'AbortError') return 130;
    const denied = permissionMessage(err);
    const code = denied ? 'ERR_PERMISSION' : err instanceof LanderError ? err.code : 'ERR_UNEXPECTED';
    const message = denied ?? (err as Error).message;
    if (human || io.log) {
      io.stderr.write(`lander ${word}: ${message}\n`);
      if (debug) io.stderr.write(`${(err as Error).stack ?? ''}\n`);
      else if (code === 'ERR_UNEXPECTED') io.stderr.write(`lander ${word}: (an unexpected error: --log-level debug shows its stack)\n`);
    } else {
      log.error({ event: 'command.failed', command: word, code, err }, message);
    }
    return code === 'ERR_CONFIG' || code === 'ERR_USAGE' || code === 'ERR_PERMISSION' ? 2 : 1;
  } finally {
    log.flush?.();
  }
}

async function runPack(args: string[], io: CliIo): Promise<number> {
  const { packCommand } = await import('./commands/pack.ts');
  return packCommand(args, { stdout: io.stdout, stderr: io.stderr, ...(io.log ? { log: io.log } : {}) });
}

async function runPush(args: string[], io: CliIo): Promise<number> {
  const { pushCommand } = await import('./commands/push.ts');
  return pushCommand(args, { stdout: io.stdout, stderr: io.stderr, ...(io.log ? { log: io.log } : {}) });
}

/** Commands that parse their own options (and print their own --help). */
const OWN_OPTIONS = new Set(['pack', 'push']);

function unknownCommand(io: CliIo, word: string): number {
  const near = suggest(word, [...COMMANDS.map((c) => c.name), ...OWN_OPTIONS, 'help']);
  io.stderr.write(`lander: unknown command "${word}"${near ? ` (did you mean "${near}"?)` : ''}; see lander --help\n`);
  return 2;
}

function usage(io: CliIo, command: string, message: string): number {
  io.stderr.write(`lander ${command}: ${message}; see lander ${command} --help\n`);
  return 2;
}
