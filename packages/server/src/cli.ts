// The `bulwark` command: `start` runs the server, `validate` checks a configuration, `migrate`
// prepares the store, `run` and `runs` talk to a running server, `demo` shows the policies
// working under real faults (see src/cli/program.ts).
import { runCli } from './cli/program.ts';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
});
