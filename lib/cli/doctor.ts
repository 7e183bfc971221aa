// `launcher doctor`: preflight checks of this host's launcher configuration.
// Prints each check as PASS/FAIL (WARN still passes) with a fix under every
// failure; exit 0 only when everything passes, 1 otherwise.
import { parseCommandArgs } from './args.ts';
import type { CommandIo } from './io.ts';
import { parseLauncherConfig } from '../config.ts';
import { allPassed, formatChecks, runDoctor } from '../launcher/doctor.ts';

const USAGE = `Usage: launcher doctor [--json]

Checks the launcher configuration in the environment: the token decodes, the
key matches the pool certificate and the certificate is valid, Docker is
reachable and new enough, the server accepts the pool certificate over mutual
TLS, and this host's clock agrees with the server's. Exit 0 only if all pass.
`;

export async function run(io: CommandIo): Promise<number> {
  let values;
  ({ values } = parseCommandArgs('doctor', { args: io.argv, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: false }, 'settings are environment variables'));
  if (values.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  const problems: string[] = [];
  let warnings: string[] = [];
  let dockerHost = io.env.DOCKER_HOST;
  try {
    // Token and key are checked one by one below, with their own messages.
    const r = parseLauncherConfig(io.env, { require: { token: false, key: false } });
    warnings = r.warnings;
    dockerHost = r.config.dockerHost;
  } catch (e) {
    problems.push((e as Error).message);
  }
  const results = await runDoctor({
    token: io.env.SPACELIFT_TOKEN?.trim() || undefined,
    key: io.env.SPACELIFT_POOL_PRIVATE_KEY || undefined,
    dockerHost,
    configProblems: problems,
    configWarnings: warnings,
  });
  const ok = allPassed(results);
  if (values.json) io.stdout.write(JSON.stringify({ ok, checks: results }, null, 2) + '\n');
  else io.stdout.write(formatChecks(results) + (ok ? 'All checks passed\n' : 'Some checks failed\n'));
  return ok ? 0 : 1;
}
