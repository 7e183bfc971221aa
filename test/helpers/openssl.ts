// The openssl CLI as a test peer: keys and CSRs made exactly as the seed
// says, and verification of what we produce. Every call runs in a temp
// directory that the caller removes with cleanup().
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface OpensslResult { status: number; stdout: string; stderr: string }

export class OpensslDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'launcher-openssl-'));

  path(name: string): string {
    return join(this.dir, name);
  }

  write(name: string, data: string | Buffer): string {
    const p = this.path(name);
    writeFileSync(p, data);
    return p;
  }

  read(name: string): string {
    return readFileSync(this.path(name), 'utf8');
  }

  /** Runs openssl in the temp dir; never throws on a non-zero exit. */
  run(args: string[], input?: string | Buffer): OpensslResult {
    const r = spawnSync('openssl', args, { cwd: this.dir, input, encoding: 'utf8', timeout: 120_000 });
    if (r.error) throw r.error;
    return { status: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Like run, but throws with openssl's stderr on failure. */
  ok(args: string[], input?: string | Buffer): string {
    const r = this.run(args, input);
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /**
   * The seed's command, `openssl req -new -newkey rsa:BITS -nodes -keyout
   * NAME.key -out NAME.csr`, with -subj so it does not prompt.
   */
  seedKeyAndCsr(name = 'spacelift', bits = 4096, subj = '/C=AU/ST=Some-State/O=Internet Widgits Pty Ltd'): { key: string; csr: string } {
    this.ok(['req', '-new', '-newkey', `rsa:${bits}`, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    return { key: this.read(`${name}.key`), csr: this.read(`${name}.csr`) };
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
