/**
 * The one SIGINT/SIGTERM handler of the CLI. A command that can stop cleanly
 * (install, run, status --watch, logs --follow) asks for `interruptSignal()`:
 * the first Ctrl-C aborts it and the command winds down and says what it
 * kept; a second Ctrl-C exits at once (130). Commands that never ask keep the
 * default behaviour: Ctrl-C ends them.
 */

let controller: AbortController | undefined;
let received: NodeJS.Signals | undefined;

function onSignal(sig: NodeJS.Signals): void {
  if (controller!.signal.aborted) {
    process.stderr.write(`lander: ${sig} again; exiting now\n`);
    process.exit(130);
  }
  received = sig;
  controller!.abort(new Error(`interrupted by ${sig}`));
}

/** Aborts on the first SIGINT or SIGTERM of this process (installs the handlers once). */
export function interruptSignal(): AbortSignal {
  if (!controller) {
    controller = new AbortController();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return controller.signal;
}

/** The signal that interrupted the command, if one did. */
export function interruptedBy(): NodeJS.Signals | undefined {
  return received;
}

/** Resolves with the signal's name at the first SIGINT or SIGTERM (the daemon's stop). */
export function untilInterrupted(signal = interruptSignal()): Promise<string> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(received ?? 'SIGTERM');
    else signal.addEventListener('abort', () => resolve(received ?? 'SIGTERM'), { once: true });
  });
}
