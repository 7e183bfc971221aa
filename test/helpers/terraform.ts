// A real Terraform runner image for tests: the busybox-static rootfs from
// docker.ts plus the host's own /usr/local/bin/terraform (1.11 on these
// machines), imported through the Engine API because no registry is reachable.
// Tests use only the built-in `terraform_data` resource and `local-exec`, so no
// provider is ever downloaded and the containers can run with network `none`.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import type { DockerClient } from '../../lib/docker/client.ts';
import { importImage, inspectImage } from '../../lib/docker/images.ts';
import { busyboxRootfs } from './docker.ts';

/** Where the machines of this project carry Terraform (DESIGN.md, test environment). */
export const TERRAFORM_BIN = '/usr/local/bin/terraform';
export const TERRAFORM_IMAGE_REPO = 'launcher-test/terraform';
export const TERRAFORM_IMAGE_TAG = '1.11';
/** The runner image: busybox + /usr/local/bin/terraform, /etc/passwd with root, a 1777 /tmp. */
export const TERRAFORM_IMAGE = `${TERRAFORM_IMAGE_REPO}:${TERRAFORM_IMAGE_TAG}`;

/**
 * Fails (never skips) when the binary is missing: a Terraform test that passes
 * without Terraform would prove nothing. Returns the version line, e.g. "Terraform v1.11.4".
 */
export function requireTerraform(): string {
  try {
    accessSync(TERRAFORM_BIN, constants.X_OK);
  } catch {
    throw new Error(`Terraform tests need an executable terraform 1.11 at ${TERRAFORM_BIN} (DESIGN.md, test environment); none was found. Install it there and re-run.`);
  }
  const out = execFileSync(TERRAFORM_BIN, ['version'], { encoding: 'utf8', env: { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null' } });
  const line = out.split('\n')[0]!.trim();
  if (!/^Terraform v1\.\d+/.test(line)) throw new Error(`${TERRAFORM_BIN} is not Terraform 1.x: it printed "${line}"`);
  return line;
}

let ensured: Promise<string> | undefined;
/** Imports the runner image unless it is there already; resolves to its reference. */
export function ensureTerraformImage(docker: DockerClient): Promise<string> {
  ensured ??= (async () => {
    requireTerraform();
    if (!(await inspectImage(docker, TERRAFORM_IMAGE))) {
      const data = readFileSync(TERRAFORM_BIN);
      await importImage(docker, busyboxRootfs([{ name: 'usr/local/bin/terraform', mode: 0o755, data }]), TERRAFORM_IMAGE_REPO, TERRAFORM_IMAGE_TAG);
    }
    return TERRAFORM_IMAGE;
  })();
  ensured.catch(() => { ensured = undefined; });
  return ensured;
}
