/** `diffguide` entry point: global options, help, and dispatch to lib/cli/commands/*. */
import { parseArgs } from 'node:util';
import { COMMANDS } from './commands.js';
import {
  GLOBAL_OPTIONS,
  backend,
  count,
  isUsageError,
  joinNegativeValues,
  type Command,
  type OptionSpec,
  type ParsedArgs,
} from './command.js';
import { initBackend } from '../backend.js';
import { packageVersion } from '../paths.js';

function optionLines(options: Record<string, OptionSpec>): string {
  const rows = Object.entries(options).map(([k, o]) => [
    `  ${o.short ? `-${o.short}, ` : '    '}--${k}${o.type === 'string' ? ' VALUE' : ''}`,
    o.help,
  ]);
  const width = Math.max(30, ...rows.map(([flag]) => flag.length + 2)); // a column that fits the longest flag
  return rows.map(([flag, help]) => flag.padEnd(width) + help).join('\n');
}

async function topHelp(): Promise<string> {
  const rows: string[] = [];
  for (const [name, load] of Object.entries(COMMANDS)) rows.push(`  ${name.padEnd(14)} ${(await load()).summary}`);
  return `diffguide: diffusion-guided image synthesis and editing (SDG, SDEdit, DiffusionCLIP, unCLIP, Imagic)

Usage: diffguide <command> [options]

Commands:
${rows.join('\n')}

Global options:
${optionLines(GLOBAL_OPTIONS)}

Run 'diffguide <command> --help' for a command's options and an example.`;
}

function commandHelp(cmd: Command): string {
  return `Usage: ${cmd.usage}\n\n${cmd.summary}\n\nOptions:\n${optionLines({ ...cmd.options, ...GLOBAL_OPTIONS })}\n\nExamples:\n${cmd.examples.map((e) => `  ${e}`).join('\n')}`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(await topHelp());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    console.log(packageVersion());
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`diffguide: unknown command '${name}'. Commands: ${Object.keys(COMMANDS).join(', ')}`);
    return 2;
  }
  const cmd = await load();
  const options = { ...GLOBAL_OPTIONS, ...cmd.options };
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(rest, options),
      options: options as never,
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(
      `diffguide ${name}: ${msg}\nValid options: ${Object.keys(options)
        .map((k) => `--${k}`)
        .join(' ')}\nSee 'diffguide ${name} --help'.`,
    );
    return 2;
  }
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  for (const [k, o] of Object.entries(options))
    if (values[k] === undefined && o.default !== undefined) values[k] = o.default;
  if (values.help) {
    console.log(commandHelp(cmd));
    return 0;
  }
  if (values.quiet) process.env.DIFFGUIDE_QUIET = '1';
  const args: ParsedArgs = { values, positionals: parsed.positionals };
  try {
    // the global options are checked before anything starts: a bad --backend or --threads is refused, not guessed
    const requested = backend(args);
    const threads = values.threads === undefined ? undefined : count(args, 'threads');
    await initBackend({
      backend: requested,
      threads,
      threadsFrom: threads === undefined ? undefined : `--threads ${threads}`,
      verbose: name === 'info' ? false : undefined,
    });
    const status = await cmd.run(args);
    return status ?? 0;
  } catch (e) {
    if (!isUsageError(e)) throw e;
    console.error(`diffguide ${name}: ${(e as Error).message}\nSee 'diffguide ${name} --help'.`);
    return 2;
  }
}

// Run when executed directly (bin/diffguide.js imports and calls main).

/** Run `main` as a process: exit with its code; an error prints one line (the stack with DIFFGUIDE_DEBUG) and exits 1. */
export function runCli(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (err) => {
      console.error(`diffguide: ${err instanceof Error ? err.message : err}`);
      if (process.env.DIFFGUIDE_DEBUG) console.error(err);
      process.exit(1);
    },
  );
}
