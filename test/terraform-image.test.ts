// The Terraform runner image other tests build on: a busybox rootfs with the
// host's terraform, able to init/plan/apply the built-in terraform_data resource
// with no network at all (no provider download).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { DockerClient } from '../lib/docker/client.ts';
import { TERRAFORM_IMAGE, ensureTerraformImage, requireTerraform } from './helpers/terraform.ts';

const docker = new DockerClient();

test('requireTerraform finds Terraform 1.x at /usr/local/bin/terraform', () => {
  assert.match(requireTerraform(), /^Terraform v1\.\d+\.\d+/);
});

test('the runner image applies terraform_data with network none, as a non-login root with a 1777 /tmp', async () => {
  assert.is(await ensureTerraformImage(docker), TERRAFORM_IMAGE);
  const name = `launcher-test-tfimage-${randomBytes(4).toString('hex')}`;
  const script = [
    'set -e',
    'ls -ld /tmp | cut -c1-10',
    'grep ^root: /etc/passwd',
    'mkdir -p /w && cd /w',
    `printf 'resource "terraform_data" "a" { input = "hello" }\\n' > main.tf`,
    'export TF_IN_AUTOMATION=1',
    'terraform init -input=false >/dev/null',
    'terraform apply -input=false -auto-approve >/dev/null',
    'terraform state list',
  ].join('\n');
  const out = execFileSync('docker', ['run', '--rm', '--name', name, '--network', 'none', TERRAFORM_IMAGE, 'sh', '-c', script], { encoding: 'utf8' });
  const lines = out.trim().split('\n');
  assert.is(lines[0], 'drwxrwxrwt');
  assert.match(lines[1]!, /^root:x:0:0:/);
  assert.is(lines[2], 'terraform_data.a');
});

test.run();
