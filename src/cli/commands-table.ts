/**
 * Every command of the `lander` CLI: its options (parsed strictly, so a
 * mistyped flag is an error with a hint), its help text and its exit codes.
 * The one place `lander --help`, `lander <cmd> --help` and the parser read.
 */

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** The value's name in the help (`--config FILE`). */
  arg?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** The usage line after `lander `. */
  usage: string;
  /** Positional arguments, all required. */
  args?: string[];
  options: Record<string, OptionSpec>;
  exits: [number, string][];
  example: string;
}

const config: OptionSpec = { type: 'string', short: 'c', arg: 'FILE', help: 'config file (default: $LANDER_CONFIG or /etc/lander/lander.json)' };
const logLevel: OptionSpec = { type: 'string', arg: 'LVL', help: "lander's own log level: fatal|error|warn|info|debug|trace|silent (debug also prints an error's stack)" };
const json: OptionSpec = { type: 'boolean', help: 'machine-readable output on stdout' };
const pretty: OptionSpec = { type: 'boolean', help: 'human-readable log lines instead of JSON' };
const root: OptionSpec = { type: 'string', arg: 'DIR', help: "the daemon's root (its socket is DIR/lander.sock); instead of reading it from the config" };
const help: OptionSpec = { type: 'boolean', short: 'h', help: 'this help' };

/** Options every command takes. */
const common = { 'log-level': logLevel, help };

/** Exit codes of the commands that ask the running daemon. */
const daemonExits: [number, string][] = [[0, 'done'], [1, 'the daemon refused or failed (its message on stderr)'], [2, 'bad usage, or neither --root nor a readable config names the daemon'], [3, 'no daemon running']];

export const COMMANDS: CommandSpec[] = [
  {
    name: 'install', summary: 'install every component at its desired version, then exit',
    usage: 'install [--config FILE] [--json] [--pretty]',
    options: { config, json: { ...json, help: 'one summary object on stdout at the end (installed, kept, generation, bytes, duration); logs as JSON on stderr' }, pretty, ...common },
    exits: [[0, 'every component installed, the generation is current'], [1, 'a component could not be installed (the current generation is left as it was)'], [2, 'bad usage or config'], [130, 'interrupted (Ctrl-C): finished downloads are kept, partial ones resume on the next run']],
    example: 'lander install --config /etc/lander/lander.json',
  },
  {
    name: 'run', summary: 'install what is missing, then run and supervise the server (the daemon)',
    usage: 'run [--config FILE] [--pretty]',
    options: { config, pretty: { ...pretty, help: 'human-readable log lines instead of JSON (logs go to stdout, for journald; log.file adds a file)' }, ...common },
    exits: [[0, 'stopped by SIGTERM or SIGINT'], [1, 'could not start (lock held, store unusable)'], [2, 'bad usage or config']],
    example: 'lander run --config /etc/lander/lander.json',
  },
  {
    name: 'status', summary: "the daemon's status (live with --watch), or the store on disk when no daemon runs",
    usage: 'status [--config FILE | --root DIR] [--json] [--watch]',
    options: { config, root, json: { ...json, help: "the daemon's status as one JSON document on stdout (with --watch, then one event per line)" }, watch: { type: 'boolean', short: 'w', help: "follow the daemon's events until Ctrl-C" }, ...common },
    exits: [[0, 'lander is healthy'], [1, 'lander is not healthy (the failing checks on stderr)'], [2, 'bad usage, or neither --root nor a readable config names the daemon'], [3, 'no daemon running (the store on disk is shown)']],
    example: 'lander status --json | jq .components',
  },
  {
    name: 'logs', summary: "lander's own log (the config's log.file, or piped-in journalctl -u lander -o cat), one readable line per record",
    usage: 'logs [--config FILE] [--file F] [--follow] [--event NAME]... [--since T] [--level L] [--json]',
    options: {
      config,
      file: { type: 'string', arg: 'F', help: "read this log file instead of the config's log.file" },
      follow: { type: 'boolean', short: 'f', help: 'keep printing as the log file grows' },
      event: { type: 'string', multiple: true, arg: 'NAME', help: 'only this event, or a whole area (server = server.*); repeatable, or comma-separated' },
      since: { type: 'string', arg: 'T', help: 'from a time (2025-06-01T12:00Z) or a duration back (10m, 2h, 1d)' },
      level: { type: 'string', arg: 'L', help: 'only records at this level or above (info, warn, error, ...)' },
      json: { ...json, help: 'the matching records as the JSON lines they were' },
      ...common,
    },
    exits: [[0, 'done (also when stdout was closed early, as by head)'], [1, 'the log file cannot be read'], [2, 'bad usage, or no log.file and nothing piped in']],
    example: 'journalctl -u lander -o cat | lander logs --event install --since 1h',
  },
  {
    name: 'check', summary: 'ask the daemon to re-read its config, poll the manifest and reconcile',
    usage: 'check [--config FILE | --root DIR] [--json]', options: { config, root, json, ...common }, exits: daemonExits,
    example: 'lander check --root /var/lib/lander',
  },
  {
    name: 'restart', summary: 'ask the daemon to restart the server on the current generation',
    usage: 'restart [--config FILE | --root DIR] [--json]', options: { config, root, json, ...common }, exits: daemonExits,
    example: 'lander restart',
  },
  {
    name: 'rollback', summary: 'ask the daemon to swap back to the previous good generation',
    usage: 'rollback [--config FILE | --root DIR] [--json]', options: { config, root, json, ...common }, exits: daemonExits,
    example: 'lander rollback --json',
  },
  {
    name: 'unmark', summary: 'clear the "bad" mark of a component version, so lander tries it again',
    usage: 'unmark COMPONENT VERSION [--config FILE | --root DIR]', args: ['COMPONENT', 'VERSION'],
    options: { config, root, ...common },
    exits: [[0, 'the mark is cleared (or there was none)'], [1, 'the store cannot be written (a running daemon holds it: stop it, or let it pick the version up after unmarking)'], [2, 'bad usage or config']],
    example: 'lander unmark server 1.4.2',
  },
  {
    name: 'verify', summary: 're-hash a generation (default: current) against its install records',
    usage: 'verify [--config FILE] [--generation N] [--json]',
    options: { config, generation: { type: 'string', arg: 'N', help: 'the generation to check (default: the current one)' }, json, ...common },
    exits: [[0, 'the tree is exactly as installed'], [1, 'differences found, or nothing to verify'], [2, 'bad usage or config']],
    example: 'lander verify --generation 3',
  },
  {
    name: 'keygen', summary: 'write a minisign key pair for signing manifests: DIR/lander.pub, DIR/lander.key (0600)',
    usage: 'keygen --out DIR', options: { out: { type: 'string', arg: 'DIR', help: 'where to write lander.pub and lander.key (never overwritten)' }, ...common },
    exits: [[0, 'written'], [1, 'a key exists already, or DIR cannot be written'], [2, 'bad usage']],
    example: 'lander keygen --out ~/.lander-keys',
  },
  {
    name: 'sign', summary: 'write FILE.minisig (minisign format; the trusted comment carries the manifest\'s sequence)',
    usage: 'sign FILE --key KEYFILE [--trusted-comment TEXT] [--legacy]', args: ['FILE'],
    options: {
      key: { type: 'string', arg: 'KEYFILE', help: 'the secret key (lander keygen, or minisign -G)' },
      'trusted-comment': { type: 'string', arg: 'TEXT', help: 'the trusted comment (default: the manifest\'s sequence and a timestamp)' },
      legacy: { type: 'boolean', help: 'a legacy (non-prehashed) signature, for old minisign verifiers' },
      ...common,
    },
    exits: [[0, 'signed'], [1, 'cannot read FILE or the key'], [2, 'bad usage']],
    example: 'lander sign manifest.json --key ~/.lander-keys/lander.key',
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}

function optionLines(options: Record<string, OptionSpec>): string[] {
  const heads = Object.entries(options).map(([n, o]) => `${o.short ? `-${o.short}, ` : '    '}--${n}${o.arg ? ` ${o.arg}` : ''}`);
  const w = Math.max(...heads.map((h) => h.length)) + 2;
  return Object.values(options).map((o, i) => `  ${heads[i]!.padEnd(w)}${o.help}`);
}

export function commandHelp(c: CommandSpec): string {
  return [
    `lander ${c.name}: ${c.summary}`, '',
    'Usage:', `  lander ${c.usage}`, '',
    'Options:', ...optionLines(c.options), '',
    'Exit codes:', ...c.exits.map(([n, m]) => `  ${String(n).padEnd(4)}${m}`), '',
    'Example:', `  ${c.example}`, '',
  ].join('\n');
}

export function globalHelp(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    "lander: keeps a GPU server's components current and runs the server", '',
    'Usage: lander COMMAND [OPTIONS]', '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}${c.summary}`),
    `  ${'pack'.padEnd(w)}split a one-folder build into component archives and a manifest`,
    `  ${'push'.padEnd(w)}publish lander pack output to an OCI registry as PREFIX/<component>:<version>`,
    `  ${'help'.padEnd(w)}this help; lander help COMMAND (or lander COMMAND --help) for one command`, '',
    'Every command takes --log-level LVL and --help. Logs and errors go to stderr, results to stdout;',
    'lander run logs to stdout (journald). An error is one line; --log-level debug adds its stack.', '',
    'Exit codes: 0 ok, 1 failed or unhealthy, 2 bad usage or config, 3 no daemon running, 130 interrupted;',
    'each command\'s --help lists its own.', '',
  ].join('\n');
}
