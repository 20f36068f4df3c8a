/**
 * The catalogue of every log record lander writes: its stable `event` name,
 * level, fields, and what an operator should do on seeing it. This is data,
 * not prose, so that the README table is generated from it (`renderEventTable`)
 * and tests check both directions: every event the code emits is here (with
 * its level and fields), and every event here is emitted by some end-to-end
 * scenario or marked `rare` with the reason no scenario triggers it.
 *
 * Names are `area.name` (or a bare `area` for the few headline events such
 * as `rollback`), lower case, the second part in kebab-case: one dot, so a
 * prefix such as `--event server` selects a whole area.
 */

export type EventLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

export interface EventSpec {
  /** The level, or the levels it may take (e.g. `server.exit`: info when asked for, warn when not). */
  level: EventLevel | readonly EventLevel[];
  /** Fields beyond the common ones (COMMON_FIELDS); a `?` suffix marks one that may be absent. */
  fields: readonly string[];
  /** What it means and what to do about it, in a sentence or two. */
  action: string;
  /** Why no end-to-end scenario produces it (a fault that tests cannot cause on purpose, or cause only in unit tests). */
  rare?: string;
}

/** On every record: pino's own, plus `event`. `err` carries `type`, `message`, `code`, `stack`, `cause`. */
export const COMMON_FIELDS = ['time', 'level', 'pid', 'hostname', 'event', 'msg'] as const;

/** Added to every event that the install worker reports (`download.*`). */
const JOB = ['component', 'version', 'jobId'] as const;

export const EVENT_NAME = /^[a-z]+(\.[a-z]+(-[a-z]+)*)?$/;

export const EVENTS = {
  // ---- daemon life cycle
  'daemon.ready': { level: 'info', fields: ['root', 'socket', 'tcpPort?'], action: 'lander started: the API listens and the first reconcile begins. Nothing to do.' },
  'daemon.stop': { level: 'info', fields: ['signal'], action: 'A stop signal arrived (systemctl stop, Ctrl-C); the server is being stopped gracefully.' },
  'daemon.stopped': { level: 'info', fields: [], action: 'Clean exit: server stopped, downloads resumable, lock released.' },
  'command.failed': { level: 'error', fields: ['command', 'code', 'err'], action: 'A command could not run (often ERR_CONFIG at start-up: fix the field named in the message).' },
  'log.reopen': { level: 'info', fields: ['file'], action: 'SIGHUP reopened the log file (after logrotate moved it). Nothing to do.' },
  'systemd.notify': { level: 'debug', fields: ['state'], action: 'A message to systemd (READY, STATUS, STOPPING, WATCHDOG). Nothing to do.', rare: 'only under systemd (NOTIFY_SOCKET): test/e2e/systemd.test.ts' },
  'systemd.notify-failed': { level: 'warn', fields: ['state', 'err'], action: 'systemd-notify could not be run or failed: readiness or watchdog pings do not reach systemd. Check that systemd-notify is installed and the unit has NotifyAccess=all.', rare: 'needs a broken systemd-notify; the notify unit test covers the no-systemd fallback' },
  'systemd.watchdog-skipped': { level: 'warn', fields: ['reason', 'stuck?', 'lagMs?'], action: 'lander withheld its watchdog ping because a job is stuck or its event loop lagged; systemd restarts lander if this persists past WatchdogSec.', rare: 'needs a job stuck for minutes; the health unit test covers the decision' },
  // ---- config
  'config.loaded': { level: 'info', fields: ['file'], action: 'A config edit was accepted and is being applied.' },
  'config.invalid': { level: 'warn', fields: ['file', 'issues'], action: 'A config edit was rejected; `issues` names each bad field by path. The last good config stays live: fix the file.' },
  'config.unchanged': { level: 'debug', fields: ['file'], action: 'The file was touched but its text is the same. Nothing to do.' },
  'config.fs-event': { level: 'trace', fields: ['file', 'kind'], action: 'A raw file-system event on the config file, for debugging the watcher.' },
  'config.watch-error': { level: ['warn', 'error'], fields: ['file', 'err'], action: 'The config file could not be watched or read (permissions, removed folder); edits may go unnoticed until it is fixed. `lander check` forces a re-read.', rare: 'needs an unreadable config folder; the watcher e2e tests cover reads' },
  'config.reload': { level: 'info', fields: ['reason'], action: 'SIGHUP (systemctl reload) asked for a re-read of the config.' },
  'config.root-changed': { level: 'error', fields: ['from', 'to'], action: 'The config names another `root`; that needs a restart of lander (systemctl restart lander). The rest of the edit is applied.', rare: 'an operator mistake; a unit of the daemon is not tested for it' },
  'desired.problem': { level: 'warn', fields: ['component', 'message'], action: 'A component is incomplete (no version, URL or digest from config or manifest), or no variant of it fits this machine: nothing lands until it is resolved (landing the rest would drop it from the live tree); fix the config or the manifest.', rare: 'the desired-specs unit tests cover the combination rule' },
  'machine.facts': { level: 'info', fields: ['machineId', 'machineIdSource?', 'os', 'arch', 'nvidiaDriver?', 'nvidiaDriverSource?', 'nvidiaDriverError?'], action: 'What staged rollouts and variants are decided on: whether a machine id was found (not the id itself), OS, arch and the NVIDIA driver version (or why none was found). `lander status` shows each component\'s rollout or variant.' },
  // ---- manifest
  'manifest.changed': { level: 'info', fields: ['url', 'etag?', 'sequence?', 'signedBy?', 'components'], action: 'A new release manifest was fetched; the versions it names are reconciled.' },
  'manifest.not-modified': { level: 'debug', fields: ['url', 'etag?'], action: 'The manifest did not change (304 or same body). Nothing to do.' },
  'manifest.next': { level: 'debug', fields: ['url', 'delayMs', 'failures'], action: 'When the manifest is polled next.' },
  'manifest.aborted': { level: 'debug', fields: ['url'], action: 'A manifest poll was cut short by a stop or a newer poll.', rare: 'a race with shutdown' },
  'manifest.persist-failed': { level: 'error', fields: ['url', 'err'], action: 'The accepted signed manifest\'s sequence could not be written to state.json (disk full, permissions); until it is, a restart would not refuse an older manifest. Fix the disk; the next accepted manifest writes it again.', rare: 'needs a state.json write to fail after the install wrote it' },
  'manifest.error': { level: ['warn', 'error'], fields: ['url', 'err', 'failures?', 'code?'], action: 'The manifest could not be fetched or parsed; the last good one stays. Check the URL and the release; polls back off and retry.' },
  // ---- installs
  'download.start': { level: 'info', fields: [...JOB, 'url', 'total?'], action: 'An archive download started from zero.' },
  'download.resume': { level: 'info', fields: [...JOB, 'offset', 'url', 'segments'], action: 'A download continues from its partial file with a Range request: bytes already on disk are not fetched again.' },
  'download.progress': { level: 'info', fields: ['component', 'version', 'bytes', 'total?', 'rate'], action: 'Download progress, at most one line per component every 5 s (the /events stream has it ~10/s).' },
  'download.retry': { level: 'warn', fields: [...JOB, 'url', 'attempt', 'delayMs', 'reason', 'offset'], action: 'A download broke or stalled and is retried after a backoff. Repeated retries point at the network or the mirror.' },
  'download.restart': { level: 'warn', fields: [...JOB, 'reason', 'url?', 'discarded?'], action: 'The partial file could not be resumed (the server ignored Range or the file changed); the download starts over.' },
  'download.recheck': { level: 'info', fields: [...JOB, 'url', 'probedRate', 'linkRate', 'below'], action: 'The first stream, judged fast by its first bytes, ran under download.segmentBelowBytesPerSec over the next 150 ms: the download goes on in segments from where it is.', rare: 'needs a server burst read late, then a capped rate; covered by test/e2e/segmented-download.test.ts' },
  'download.segmented': { level: 'info', fields: [...JOB, 'url', 'linkRate?', 'connections', 'segments', 'segmentBytes', 'offset', 'total', 'reused'], action: 'A large archive on a server with ranges is fetched as segments over several keep-alive connections; the install still reads it in one pass.', rare: 'needs an archive over download.segmentThreshold on a slow link; covered by test/e2e/segmented-download.test.ts' },
  'download.segment-retry': { level: 'warn', fields: [...JOB, 'url', 'offset', 'end', 'delayMs', 'reason', 'connections'], action: 'One segment broke or was throttled (429/503) and is retried from its last byte; a throttling server gets fewer connections.', rare: 'needs an archive over download.segmentThreshold on a slow link; covered by test/e2e/segmented-download.test.ts' },
  'download.single-stream': { level: 'warn', fields: [...JOB, 'url', 'reason', 'offset'], action: 'The server ignored a Range, answered 200 or changed its ETag mid-way: the download continues as one stream, nothing written from segments past the fed bytes is kept.', rare: 'needs an archive over download.segmentThreshold on a slow link; covered by test/e2e/segmented-download.test.ts' },
  'download.mirror-next': { level: 'warn', fields: [...JOB, 'url', 'next', 'reason', 'status?', 'attempts'], action: 'A URL failed (404, refused, out of retries); the next mirror is tried. Fix or drop the URL if it keeps failing.', rare: 'needs two mirrors, the first failing; covered by test/e2e/network-faults.test.ts' },
  'download.mirror-corrupt': { level: 'warn', fields: [...JOB, 'url', 'next', 'reason', 'code', 'expected'], action: "A mirror's archive does not decompress or extract (or is over the size); lander tries the next mirror from zero. Report the mirror: its copy is damaged.", rare: 'needs two mirrors, one corrupt; covered by test/e2e/network-faults.test.ts' },
  'download.mirror-mismatch': { level: 'warn', fields: [...JOB, 'url', 'next', 'expected', 'actual'], action: 'A mirror served an archive whose SHA-256 differs from the expected one; lander tries the next mirror from zero. Report the mirror: it is stale or tampered with.', rare: 'needs two mirrors, one bad; covered by the install e2e tests' },
  'download.reauth': { level: 'warn', fields: ['component', 'version', 'reason'], action: 'An OCI registry refused the token on a retry (it expired during a long download); lander gets a new one and resumes from the partial file. Often: nothing to do.', rare: 'needs a registry token that expires mid-download; covered by test/e2e/oci-auth.test.ts' },
  'install.verified': { level: 'info', fields: ['component', 'version', 'sha256', 'bytes', 'downloadedBytes', 'reusedBytes', 'extractedBytes', 'files', 'durationMs', 'entry', 'partBytes?', 'spareWorker?'], action: 'A component downloaded, matched its SHA-256 and is in the store. `partBytes`: the archive bytes written to the resumable `.part` (fewer than `bytes` when a link faster than the install bypassed it). `spareWorker`: its install worker was the spare the daemon keeps started (`lander install` starts its own).' },
  'install.chunked-plan': { level: 'info', fields: [...JOB, 'links', 'copies', 'fetch', 'members', 'runs', 'fetchBytes', 'reusedBytes', 'worker'], action: 'A chunked archive is installed with its index: how many files are hard-linked to the store, how many members are copied locally or fetched by range; `worker` says it runs off the main thread. Nothing to do.', rare: 'needs a chunked archive published with its index in a manifest: test/e2e/chunked-install.test.ts' },
  'install.chunked-resume': { level: 'info', fields: [...JOB, 'members', 'bytes'], action: 'A chunked install continues: members fetched and verified before an interruption are used again, not fetched.', rare: 'needs a chunked install killed mid-way: test/e2e/chunked-install.test.ts' },
  'install.chunked-resume-failed': { level: 'warn', fields: [...JOB, 'files', 'members'], action: 'Files rebuilt from an interrupted chunked install do not match their content hash in the index (the kept tree was changed or damaged); their members are fetched again. Nothing to do unless it repeats.', rare: 'needs a resume tree damaged between two runs: test/unit/chunked-resume.test.ts' },
  'install.chunked-retry': { level: 'warn', fields: [...JOB, 'url', 'attempt', 'delayMs', 'reason', 'member'], action: 'A range of a chunked archive broke or failed and is asked again from the first member not yet received. Repeated retries point at the network or the mirror.', rare: 'needs a server that cuts a range: test/e2e/chunked-install.test.ts' },
  'install.index-unavailable': { level: 'warn', fields: ['component', 'version', 'url', 'reason'], action: 'The manifest names a chunk index that cannot be downloaded; the archive is installed in one pass instead (no delta). Publish the index beside the archive.', rare: 'needs a manifest naming a missing index: test/e2e/chunked-install.test.ts' },
  'install.reused': { level: 'info', fields: ['component', 'version', 'sha256', 'entry', 'storedAs'], action: 'The archive with that digest is already in the store (stored under version `storedAs`); nothing was downloaded, and it lands as `version`.', rare: 'needs a new version whose archive is byte-identical to one in the store (a re-tag)' },
  'install.stray-error': { level: 'debug', fields: ['component', 'version', 'err'], action: 'An I/O error arrived after an install was aborted (a socket or file being torn down); it is ignored, the abort stands and the partial download is kept.', rare: 'a race between an abort and I/O in flight; seen only under load' },
  'install.aborted': { level: 'info', fields: ['component', 'version', 'reason'], action: 'An install was aborted (newer version wanted, or lander stopping); its partial download stays for a resume.' },
  'install.failed': { level: 'error', fields: ['component', 'version', 'err'], action: 'A component could not be installed (`err.code`: digest mismatch, HTTP error, archive rejected, disk full). The running server is untouched; fix the cause, then `lander check`.' },
  'install.skip-bad': { level: 'warn', fields: ['component', 'version', 'keeping?'], action: 'The desired version failed on the server before and is not retried until an operator runs `lander unmark COMPONENT VERSION`. Publish or pin another version, or unmark it once the cause is fixed.' },
  'install.unmarked': { level: 'info', fields: ['component', 'version', 'cleared'], action: '`lander unmark`: the bad mark of this version is cleared; the daemon reconciles and tries it again.' },
  'install.result': { level: 'info', fields: ['component', 'version', 'status', 'sha256?', 'downloadedBytes?', 'reusedBytes?', 'durationMs?'], action: '`lander install`: the outcome for one component.' },
  'install.incomplete': { level: 'error', fields: ['failed', 'err?'], action: '`lander install`: some components failed (see `install.failed`), or no valid manifest could be read (`err`); `current` was left as it was.' },
  'install.done': { level: 'info', fields: ['generation', 'switched', 'components'], action: '`lander install` finished; `switched` says whether `current` changed.' },
  'reconcile.waiting': { level: 'info', fields: ['url'], action: 'A manifest is configured but none has been accepted yet (unreachable, unsigned, bad signature, older or expired: see `manifest.error`); the current generation stays as it is until one is.' },
  'reconcile.incomplete': { level: 'warn', fields: ['errors'], action: 'A reconcile could not install everything (see `install.failed`); the server keeps running on the current generation.' },
  'reconcile.failed': { level: 'error', fields: ['err'], action: 'A reconcile failed unexpectedly; look at `err`. lander keeps running and retries on the next change or `lander check`.', rare: 'an unexpected fault' },
  // ---- store and generations
  'store.cleanup': { level: 'info', fields: ['path'], action: 'A staging folder left by an interrupted install was removed at start-up.', rare: 'needs lander killed mid-extraction; a stopped job removes its own staging folder' },
  'store.recover': { level: 'warn', fields: ['current', 'recorded'], action: 'After a crash, state.json lagged behind the `current` link; lander follows the link. Nothing to do.', rare: 'needs a crash between two renames; covered by the store unit tests' },
  'store.gc': { level: 'info', fields: ['generations', 'entries', 'downloads', 'downloadBytes'], action: 'Old generations and store entries beyond keepGenerations were removed; after a landing, so were downloads no install uses and no spec pins (partial downloads of versions no longer wanted).' },
  'generation.built': { level: 'info', fields: ['generation', 'files', 'linked', 'copied', 'durationMs'], action: 'A new generation folder was built from store entries (hard links; `copied` > 0 means links were impossible).' },
  'generation.swap': { level: 'info', fields: ['from', 'to', 'components'], action: '`current` now points at another generation.' },
  'generation.landed': { level: 'info', fields: ['generation', 'from', 'restarted', 'durationMs'], action: 'A generation is live (and healthy, when the server was restarted on it).' },
  'generation.failed': { level: 'error', fields: ['components', 'err'], action: 'A generation could not be built from verified entries (links escaping the tree, disk full); nothing was swapped. Look at `err.code`.', rare: 'needs hostile links across components; covered by the generation tests' },
  'restart.idle-wait': { level: 'info', fields: ['idle', 'waitedMs', 'generation'], action: 'With restart.when=idle: how long lander waited for the server to be idle before restarting it.', rare: 'needs an idle probe; covered by the landing e2e tests' },
  'rollback': { level: 'error', fields: ['from', 'to', 'bad', 'reason', 'err'], action: 'A generation failed (unhealthy, crash loop, or an operator asked); lander swapped back to `to` and will not retry the versions in `bad` until `lander unmark` clears them. Investigate those versions; publish a fixed one, or unmark once the cause is fixed.' },
  'rollback.failed': { level: 'error', fields: ['generation', 'err'], action: 'The generation rolled back to did not become healthy either: the server is down. Check the server output and the GPU; `lander restart` after fixing.', rare: 'needs two broken generations in a row' },
  // ---- the supervised server
  'server.spawn': { level: 'info', fields: ['serverPid', 'generation', 'command', 'args', 'cwd'], action: 'The server process started.' },
  'server.state': { level: 'info', fields: ['from', 'to', 'serverPid?', 'generation?', 'elapsedMs?', 'spawnToHealthyMs?', 'probes?', 'via?', 'err?', 'reason?', 'failures?', 'delayMs?', 'attempt?', 'exitsInWindow?'], action: 'The server moved between stopped, starting, healthy, unhealthy, backoff, stopping and failed. Alert on `to: "failed"` or a long `unhealthy`.' },
  'server.output': { level: 'info', fields: ['src', 'stream', 'serverPid', 'line', 'truncated?'], action: 'One line the server printed, verbatim (`src: "server"`). Lines over 16 KiB are cut and flagged `truncated`.' },
  'server.output-dropped': { level: 'warn', fields: ['src', 'serverPid', 'dropped', 'droppedTotal'], action: 'The server printed faster than the log budget; lines were dropped, not buffered. Lower the server\'s verbosity if it matters.', rare: 'needs a flood; covered by the supervisor e2e tests' },
  'server.output-error': { level: 'warn', fields: ['serverPid', 'stream', 'err'], action: 'Reading the server\'s output failed.', rare: 'a pipe fault' },
  'server.exit': { level: ['info', 'warn'], fields: ['serverPid', 'generation', 'code', 'signal', 'uptimeMs', 'at', 'expected', 'clean', 'forced'], action: 'The server exited: info when lander stopped it, warn when it crashed (lander restarts it with backoff).' },
  'server.kill': { level: 'warn', fields: ['serverPid', 'timeoutMs'], action: 'The server ignored the stop signal for server.stop.timeout and got SIGKILL.', rare: 'needs a server that ignores SIGTERM; covered by the supervisor e2e tests' },
  'server.leftovers': { level: 'warn', fields: ['serverPid'], action: 'Processes of the server\'s group outlived it and were SIGKILLed (workers that ignore SIGTERM).', rare: 'needs a server with a stubborn child; covered by the supervisor e2e tests' },
  'server.crash-loop': { level: 'error', fields: ['generation', 'exitsInWindow', 'windowMs'], action: 'The server crashed too often in the window; lander rolls back to the previous good generation.', rare: 'covered by the landing e2e tests' },
  'server.restart-failed': { level: 'warn', fields: ['generation', 'err'], action: 'An automatic restart after a crash failed; lander backs off and tries again.', rare: 'covered by the supervisor e2e tests' },
  'server.environment': { level: 'error', fields: ['generation', 'code', 'err'], action: 'The server could not start for the machine\'s reasons (a runtime permission such as Deno\'s --allow-run, a missing interpreter, a permission of the service user, its port taken by another program). Nothing is marked bad; fix the cause and restart lander (or run lander restart).', rare: 'needs a machine fault at spawn: test/e2e/spawn-environment.test.ts' },
  'server.start-failed': { level: 'error', fields: ['generation', 'err'], action: 'The server did not become healthy from the current generation at start-up; lander rolls back if it can.', rare: 'needs a broken current generation at start-up' },
  'server.process-error': { level: 'warn', fields: ['serverPid', 'err'], action: 'The child process reported an error (e.g. a failed signal).', rare: 'a process fault' },
  'server.signal-failed': { level: 'error', fields: ['serverPid', 'signal', 'err'], action: 'lander could not signal the server\'s process group (permissions?). The server may keep running: check `ps -g <serverPid>`.', rare: 'needs a permission fault' },
  'server.record-failed': { level: 'warn', fields: ['err'], action: 'server.json could not be written; a lander killed now would not find its orphaned server. Check the root\'s disk space and permissions.', rare: 'needs a disk fault' },
  'server.orphan': { level: 'warn', fields: ['serverPid', 'generation'], action: 'A server left running by an earlier lander (killed without a stop) was stopped before starting a new one. Nothing to do.' },
  'server.orphan-skipped': { level: 'warn', fields: ['serverPid', 'cwd'], action: 'The pid recorded in server.json belongs to another process now; it was left alone.', rare: 'needs pid reuse' },
  // ---- status API
  'api.listening': { level: 'info', fields: ['socket', 'tcp?'], action: 'The status API listens on its unix socket (and loopback TCP if configured).' },
  'api.request': { level: 'debug', fields: ['method', 'path', 'status', 'ms', 'via'], action: 'One API request answered.' },
  'api.request-failed': { level: 'error', fields: ['path', 'err'], action: 'An API handler failed unexpectedly (500); look at `err`.', rare: 'an unexpected fault' },
  'api.action-failed': { level: 'error', fields: ['err'], action: 'A POST action (check, restart, rollback) failed unexpectedly (500); look at `err`.', rare: 'an unexpected fault' },
  'api.client-error': { level: 'debug', fields: ['code'], action: 'A client sent a malformed or slow request and was cut off.', rare: 'covered by the API e2e tests' },
  'api.events-slow': { level: 'warn', fields: ['dropped'], action: 'An /events client did not read its stream and was disconnected.', rare: 'covered by the API e2e tests' },
  'api.events-error': { level: 'warn', fields: ['err'], action: 'An event could not be sent to an /events client; its stream was closed.', rare: 'an unexpected fault' },
  // ---- lander pack (a release tool, run by whoever publishes)
  'pack.planned': { level: 'info', fields: ['source', 'components'], action: '`lander pack`: how the one-folder build splits into components.', rare: '`lander pack` is not part of the daemon scenarios; covered by the pack e2e tests' },
  'pack.archive': { level: 'info', fields: ['component', 'asset', 'sha256', 'size', 'entries'], action: '`lander pack`: one component archive written.', rare: 'see pack.planned' },
  'pack.done': { level: 'info', fields: ['out', 'components', 'manifest', 'signed', 'durationMs', 'maxRssBytes'], action: '`lander pack`: the release (archives, sidecars, manifest) is written.', rare: 'see pack.planned' },
  'push.component': { level: 'info', fields: ['component', 'version', 'reference', 'manifestDigest', 'blobsPushed', 'blobsPresent', 'bytesPushed', 'manifestPushed'], action: '`lander push`: one component is in the registry (`blobsPresent`: skipped, the registry had them).', rare: '`lander push` is not part of the daemon scenarios; covered by test/e2e/oci-registry.test.ts' },
  'push.done': { level: 'info', fields: ['target', 'components', 'bytesPushed'], action: '`lander push`: every component is in the registry.', rare: 'see push.component' },
  'push.failed': { level: 'error', fields: ['code', 'err'], action: '`lander push` failed; the message names the reference and the registry\'s answer.', rare: 'see push.component' },
  'pack.failed': { level: 'error', fields: ['code', 'err'], action: '`lander pack` failed; the message says what to fix.', rare: 'see pack.planned' },
} as const satisfies Record<string, EventSpec>;

export type EventName = keyof typeof EVENTS;

export function eventSpec(name: string): EventSpec | undefined {
  return Object.hasOwn(EVENTS, name) ? (EVENTS as Record<string, EventSpec>)[name] : undefined;
}

export function levelsOf(spec: EventSpec): readonly EventLevel[] {
  return typeof spec.level === 'string' ? [spec.level] : spec.level;
}

function cell(s: string): string {
  return s.replaceAll('|', '\\|');
}

/** The README's event table (between `<!-- events:begin -->` and `<!-- events:end -->`), generated from EVENTS. */
export function renderEventTable(): string {
  const rows = Object.entries(EVENTS as Record<string, EventSpec>).map(([name, s]) => {
    const fields = s.fields.length ? s.fields.map((f) => `\`${f}\``).join(', ') : '—';
    return `| \`${name}\` | ${levelsOf(s).join(', ')} | ${fields} | ${cell(s.action)} |`;
  });
  return ['| event | level | fields | what it means, what to do |', '|---|---|---|---|', ...rows].join('\n');
}
