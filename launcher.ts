#!/usr/bin/env node
// Entry point only: argv -> subcommand -> its run(). No logic lives here.
// Subcommands load lazily so `launcher version` does not pay for the server.
import { processIo, type Command } from './lib/cli/io.ts';
import { isLauncherError } from './lib/errors.ts';
import { nodeVersionProblem } from './lib/node-version.ts';

const commands: Record<string, () => Promise<{ run: Command }>> = {
  run: () => import('./lib/cli/run.ts'),
  server: () => import('./lib/cli/server.ts'),
  admin: () => import('./lib/cli/admin.ts'),
  keygen: () => import('./lib/cli/keygen.ts'),
  exec: () => import('./lib/cli/exec.ts'),
  doctor: () => import('./lib/cli/doctor.ts'),
  state: () => import('./lib/cli/state.ts'),
  version: () => import('./lib/cli/version.ts'),
};

const USAGE = `Usage: launcher [COMMAND] [OPTIONS]

Commands:
  run       join the worker pool and run its jobs (the default)
  server    run the control plane
  admin     talk to the server's admin API
  keygen    create a pool key and CSR
  exec      run one phase locally with the launcher configuration
  doctor    check configuration, key, Docker and server
  state     seal or open run state in the age format
  version   print version, build commit and Node version

Run 'launcher COMMAND --help' for a command's options.
`;

export async function main(argv: string[]): Promise<number> {
  // Before any command module loads: an older Node would fail inside undici with a stack trace.
  const tooOld = nodeVersionProblem(process.versions.node, process.execPath);
  if (tooOld !== undefined) {
    process.stderr.write(`launcher: ${tooOld}\n`);
    return 2;
  }
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (first === '--version') return main(['version', ...rest]);
  const name = first === undefined || first.startsWith('-') ? 'run' : first;
  const args = name === first ? rest : argv;
  const load = commands[name];
  if (!load) {
    process.stderr.write(`launcher: Unknown command "${name}": expected one of ${Object.keys(commands).join(', ')}\n`);
    return 2;
  }
  try {
    const mod = await load();
    return await mod.run(processIo(args));
  } catch (e) {
    if (isLauncherError(e)) {
      process.stderr.write(`launcher ${name}: ${e.message}\n`);
      return e.exitCode;
    }
    process.stderr.write(`launcher ${name}: Unexpected failure: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e) => { process.stderr.write(String(e) + '\n'); process.exitCode = 1; },
);
