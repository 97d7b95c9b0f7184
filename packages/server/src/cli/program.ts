// The commands of `bulwark` and how they fail: every error is one line `bulwark: ...` (a config
// file's issues excepted: one per line) and exit code 1. Built per call, so tests run it in-process.
// Commands load what they need when run: `--help` and `runs` do not pay for the server's modules.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { Env } from '../config/env.ts';
import { ConfigError } from '../config/errors.ts';
import { CliError } from './errors.ts';
import type { Terminal } from './run.ts';

export interface CliIo {
  stdout: Terminal;
  stderr: { write(text: string): unknown };
  env: Env;
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** Runs `bulwark` with `argv` (without node and the script); resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  /** Runs an action; a known error is printed as one line and exits 1, a returned number is the exit code. */
  const handled =
    <A extends unknown[]>(action: (...args: A) => Promise<unknown>) =>
    async (...args: A): Promise<void> => {
      try {
        const code = await action(...args);
        if (typeof code === 'number') exitCode = code;
      } catch (error) {
        exitCode = 1;
        if (error instanceof ConfigError) io.stderr.write(`${error.message}\n`);
        else io.stderr.write(`bulwark: ${oneLine(error)}\n`);
        if (io.env.BULWARK_DEBUG && error instanceof Error && error.stack)
          io.stderr.write(`${error.stack}\n`);
      }
    };

  const program = new Command('bulwark')
    .description('Bulwark: resilience for the calls a service makes, configured in bulwark.yaml')
    .version(version, '-v, --version', 'print the version')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => void io.stdout.write(text),
      writeErr: (text) => void io.stderr.write(text),
      // Usage errors as one line, like every other error of this command.
      outputError: (text, write) =>
        write(`bulwark: ${text.replace(/^error: /, '').trimEnd()} (see --help)\n`),
    });

  program
    .command('start')
    .description(
      'start the server: ./bulwark.yaml (or --config) if there is one, else the built-in examples; SIGTERM or Ctrl-C shuts it down gracefully',
    )
    .option('-c, --config <file>', 'the configuration file (default: ./bulwark.yaml when it exists)')
    .option('--host <host>', 'the address to listen on (default: 127.0.0.1)')
    .option('-p, --port <port>', 'the port; 0 picks a free one (default: 8080)', port)
    .option(
      '--data-dir <dir>',
      'where the SQLite store and the generated admin key live (default: ./.bulwark)',
    )
    .option(
      '--no-examples',
      'without a configuration file, start empty instead of with the built-in examples',
    )
    .action(
      handled(
        async (options: {
          config?: string;
          host?: string;
          port?: number;
          dataDir?: string;
          examples: boolean;
        }) => {
          const { startServer } = await import('../start.ts');
          await startServer({ ...options, env: io.env, signals: true, stdout: io.stdout });
        },
      ),
    );

  program
    .command('validate')
    .description('check a configuration file and print every issue, with its line and column')
    .argument('<file>', 'the configuration file, e.g. bulwark.yaml')
    .option('--json', 'print the result as JSON')
    .action(
      handled(async (file: string, options: { json?: boolean }) => {
        const { loadConfig } = await import('../config/load.ts');
        const print = (value: unknown) => io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
        try {
          const config = await loadConfig(file, { env: io.env });
          const deps = Object.values(config.dependencies);
          const critical = deps.filter((d) => d.critical === true).length;
          const groups = Object.keys(config.groups).length;
          // Counts only: the configuration holds resolved secrets, so none of its values is printed.
          if (options.json) print({ valid: true, file, dependencies: deps.length, critical, groups });
          else {
            io.stdout.write(
              `${file} is valid: ${plural(deps.length, 'dependency', 'dependencies')} (${critical} critical), ${plural(groups, 'group', 'groups')}\n`,
            );
          }
          return 0;
        } catch (error) {
          if (!(error instanceof ConfigError) || !options.json) throw error;
          print({ valid: false, file, issues: error.issues });
          return 1;
        }
      }),
    );

  program
    .command('migrate')
    .description(
      "apply the workflow store's pending migrations (SQLite in the data directory, or PostgreSQL)",
    )
    .option('-c, --config <file>', 'the configuration file whose server section names the store')
    .option('--database <url>', 'a PostgreSQL URL (default: server.database, or BULWARK_DATABASE_URL)')
    .option('--data-dir <dir>', 'where the SQLite store lives (default: ./.bulwark)')
    .action(
      handled(async (options: { config?: string; database?: string; dataDir?: string }) => {
        const { migrateCommand } = await import('./migrate.ts');
        return migrateCommand(options, io.stdout, io.env);
      }),
    );

  remote(
    program
      .command('run')
      .description('start a run of a workflow on a running server; --follow shows its progress until it ends')
      .argument('<workflow>', 'the workflow, e.g. adopt-pet')
      .option(
        '-i, --input <json>',
        `the run's input as JSON, e.g. '{"pet":"rex","adopter":"Ada"}' (default: null)`,
      )
      .addOption(
        new Option('--priority <priority>', "the run's priority (default: normal)").choices([
          'low',
          'normal',
          'high',
          'urgent',
          'critical',
        ]),
      )
      .option('--idempotency-key <key>', 'starting again with the same key returns the first run')
      .option(
        '-f, --follow',
        'draw the progress and timeline until the run ends; exit 0 only if it completed',
      )
      .option('--json', 'print the run as JSON'),
  ).action(
    handled(async (workflow: string, options: import('./run.ts').RunOptions) => {
      const { runCommand } = await import('./run.ts');
      return runCommand(workflow, options, io.stdout, io.env);
    }),
  );

  remote(
    program
      .command('runs')
      .description('list the newest runs of a running server')
      .option('-s, --status <statuses>', 'only these statuses, comma-separated, e.g. failed,cancelled')
      .option('-w, --workflow <name>', 'only runs of this workflow')
      .option('-n, --limit <n>', 'at most this many (1 to 500; default 50)')
      .option('--cursor <id>', 'the page after this run (the "more:" line of the previous page)')
      .option('--json', 'print the page as JSON'),
  ).action(
    handled(async (options: import('./runs.ts').RunsOptions) => {
      const { runsCommand } = await import('./runs.ts');
      return runsCommand(options, io.stdout, io.env);
    }),
  );

  program
    .command('demo')
    .description(
      'start misbehaving upstreams and the server, drive load through them, show the policies reacting live, then write an HTML report',
    )
    .option('-d, --duration <duration>', 'how long the load runs, 3s to 1h (default: 60s)')
    .option('--report <dir>', 'where the report goes (default: ./bulwark-demo-report)')
    .option('--seed <n>', 'the seed of the upstreams’ script: the same seed, the same script (default: 1)')
    .option('-p, --port <port>', 'the server’s port; 0 picks a free one (default: 0)', port)
    .option('--no-server', 'run without the server and its dashboard')
    .action(
      handled(async (options: import('./demo.ts').DemoCommandOptions) => {
        const { demoCommand } = await import('./demo.ts');
        return demoCommand(options, io.stdout, io.env);
      }),
    );

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    // Help, the version and usage errors: commander has printed them already.
    if (error instanceof CommanderError) return error.exitCode;
    throw error;
  }
  return exitCode;
}

/** The options of every command that talks to a running server. */
function remote(command: Command): Command {
  return command
    .option('--url <url>', 'the server (default: http://127.0.0.1:8080)')
    .option('--key <key>', 'an API key (default: BULWARK_API_KEY, else <data-dir>/admin.key)')
    .option('--data-dir <dir>', "the server's data directory, to read its admin.key (default: ./.bulwark)");
}

function oneLine(error: unknown): string {
  if (error instanceof CliError) return error.message;
  const e = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e?.code === 'EADDRINUSE') {
    return `cannot listen on ${e.address}:${e.port}: the address is in use (choose another with --port)`;
  }
  if (e?.code === 'EADDRNOTAVAIL')
    return `cannot listen on ${e.address}: no such address on this machine (--host)`;
  if (e?.code === 'EACCES' && e.syscall === 'listen')
    return `cannot listen on port ${e.port}: permission denied`;
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65_535) throw new InvalidArgumentError('expected a port from 0 to 65535.');
  return n;
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}
