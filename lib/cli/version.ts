import type { CommandIo } from './io.ts';
import { COMMIT, VERSION } from '../version.ts';

export async function run(io: CommandIo): Promise<number> {
  const json = io.argv.includes('--json');
  const facts = { version: VERSION, commit: COMMIT, node: process.versions.node, platform: `${process.platform}/${process.arch}` };
  io.stdout.write(json ? JSON.stringify(facts) + '\n' : `launcher ${facts.version} (commit ${facts.commit}, node ${facts.node}, ${facts.platform})\n`);
  return 0;
}
