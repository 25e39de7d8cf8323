/**
 * Ctrl-C / `kill` for training runs: the first SIGINT or SIGTERM lets the current step finish, writes a
 * checkpoint and returns from `train` (pass `signal` to it); a second one quits at once (the last
 * checkpoint still resumes). Without this, a kill loses up to one checkpoint interval.
 */
import os from 'node:os';

export interface StopOnSignals {
  /** Aborted at the first signal: pass as `TrainOptions.signal`. */
  signal: AbortSignal;
  /** The signal received, if any. */
  received(): NodeJS.Signals | null;
  /** The exit status a shell expects after that signal (128 + its number), or 0. */
  exitCode(): number;
  /** Remove the handlers (default signal behaviour again). */
  dispose(): void;
}

export function stopOnSignals(log: (line: string) => void = (l) => process.stderr.write(l + '\n')): StopOnSignals {
  const ctl = new AbortController();
  let got: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (got) {
      log(`${sig} again: quitting now (the last checkpoint resumes)`);
      process.exit(128 + (os.constants.signals[sig] ?? 0));
    }
    got = sig;
    log(`${sig}: stopping after this step and writing a checkpoint (${sig} again quits at once)`);
    ctl.abort();
  };
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  for (const s of sigs) process.on(s, onSignal);
  return {
    signal: ctl.signal,
    received: () => got,
    exitCode: () => (got ? 128 + (os.constants.signals[got] ?? 0) : 0),
    dispose: () => {
      for (const s of sigs) process.off(s, onSignal);
    },
  };
}
