// Helpers for the age tests: a temp dir, keys made exactly as the seed says,
// a seeded PRNG for the fuzz loops, and the real `age` CLI.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class TempDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'launcher-age-'));
  path(name: string): string {
    return join(this.dir, name);
  }
  write(name: string, data: string | Uint8Array): string {
    writeFileSync(this.path(name), data);
    return this.path(name);
  }
  read(name: string): Buffer {
    return readFileSync(this.path(name));
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The seed's command: `openssl req -new -newkey rsa:4096 -nodes -keyout NAME.key -out NAME.csr`. */
export function seedKey(t: TempDir, name: string, bits = 4096): { key: string; csr: string } {
  execFileSync('openssl', ['req', '-new', '-newkey', `rsa:${bits}`, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], { cwd: t.dir, stdio: 'pipe' });
  return { key: t.path(`${name}.key`), csr: t.path(`${name}.csr`) };
}

export function hasSshKeygen(): boolean {
  return spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error === undefined;
}

/** Runs a tool, returning stdout; throws with its stderr on a non-zero exit. */
export function run(cmd: string, args: string[], opts: { cwd?: string; input?: Uint8Array | string } = {}): Buffer {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, input: opts.input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr?.toString()}`);
  return r.stdout;
}
