// The `bulwark` command: `bulwark validate <file>` checks a configuration (later: `start` and more).
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ConfigError } from './config/errors.ts';
import { loadConfig } from './config/load.ts';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('bulwark')
  .description('Bulwark: resilience for the calls a service makes, configured in bulwark.yaml')
  .version(version, '-v, --version', 'print the version')
  .showHelpAfterError();

program
  .command('validate')
  .description('check a configuration file and print every issue, with its line and column')
  .argument('<file>', 'the configuration file, e.g. bulwark.yaml')
  .option('--json', 'print the result as JSON')
  .action(async (file: string, options: { json?: boolean }) => {
    try {
      const config = await loadConfig(file);
      const deps = Object.values(config.dependencies);
      const critical = deps.filter((d) => d.critical === true).length;
      const groups = Object.keys(config.groups).length;
      // Counts only: the configuration holds resolved secrets, so none of its values is printed.
      if (options.json) {
        print({ valid: true, file, dependencies: deps.length, critical, groups });
      } else {
        process.stdout.write(
          `${file} is valid: ${plural(deps.length, 'dependency', 'dependencies')} (${critical} critical), ${plural(groups, 'group', 'groups')}\n`,
        );
      }
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      process.exitCode = 1;
      if (options.json) print({ valid: false, file, issues: error.issues });
      else process.stderr.write(`${error.message}\n`);
    }
  });

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

await program.parseAsync(process.argv);
