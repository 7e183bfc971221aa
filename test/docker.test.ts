// The Engine API client against the real dockerd, plus its pure parts
// (DOCKER_HOST, version negotiation, registry credentials, the stream demuxer).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';
import { pack, extract } from 'tar-stream';
import { DockerClient, DockerError, MIN_API_VERSION, negotiateVersion } from '../lib/docker/client.ts';
import { parseDockerHost } from '../lib/docker/host.ts';
import { ConfigError } from '../lib/errors.ts';
import { imageRegistry, normaliseRegistry, parseDockerConfig, registryAuthHeader } from '../lib/docker/auth.ts';
import { Demuxer, muxFrame } from '../lib/docker/stream.ts';
import { importImage, inspectImage, removeImage, withDefaultTag } from '../lib/docker/images.ts';
import { attachContainer, createContainer, listContainers, removeContainer, inspectContainer, killContainer } from '../lib/docker/containers.ts';
import { getArchive, putArchive } from '../lib/docker/archive.ts';
import { TEST_IMAGE, busyboxRootfs, ensureTestImage } from './helpers/docker.ts';

const docker = new DockerClient();

test('DOCKER_HOST: unix sockets (default, unix:// or a bare path), and a clear refusal otherwise (tcp:// too)', () => {
  assert.is(parseDockerHost(undefined).socketPath, '/var/run/docker.sock');
  assert.is(parseDockerHost('').host, 'unix:///var/run/docker.sock');
  assert.is(parseDockerHost('unix:///run/user/1000/docker.sock').socketPath, '/run/user/1000/docker.sock');
  assert.is(parseDockerHost('/tmp/d.sock').host, 'unix:///tmp/d.sock');
  const refusal = (v: string): ConfigError => { try { parseDockerHost(v); } catch (e) { assert.ok(e instanceof ConfigError); return e; } throw new Error(`${v} was accepted`); };
  for (const v of ['tcp://127.0.0.1:2375', 'http://127.0.0.1:2375', 'npipe:////./pipe/docker_engine']) {
    const e = refusal(v);
    assert.is(e.code, 'DOCKER_HOST_INVALID');
    assert.is(e.exitCode, 2);
    assert.is(e.message, `Cannot parse DOCKER_HOST: "${v}" is not a unix socket (the launcher talks to the local engine only) (try unix:///var/run/docker.sock)`);
  }
  assert.match(refusal('unix://relative.sock').message, /no absolute socket path/);
  // The client refuses what start-up refuses: one parser for both.
  assert.throws(() => new DockerClient({ host: 'tcp://127.0.0.1:2375' }), /is not a unix socket/);
});

test('API version negotiation: newest common version, refuses engines older than the minimum', () => {
  assert.is(negotiateVersion('1.41', '1.12'), '1.41');
  assert.is(negotiateVersion('1.43', '1.12'), '1.43');
  assert.is(negotiateVersion('1.52', '1.44'), '1.47');
  try {
    negotiateVersion('1.40', '1.12');
    assert.unreachable();
  } catch (e) {
    assert.instance(e, DockerError);
    assert.is((e as DockerError).code, 'DOCKER_API_TOO_OLD');
    assert.match((e as Error).message, `Docker Engine API 1.40 is too old: the launcher needs API ${MIN_API_VERSION} or newer`);
  }
  assert.throws(() => negotiateVersion('1.60', '1.50'), /upgrade the launcher/);
});

test('ping and version negotiation against the running engine', async () => {
  await docker.ping();
  const e = await docker.engine();
  assert.is(e.apiVersion, negotiateVersion(e.engineApiVersion, e.engineMinApiVersion));
  assert.ok(e.engineVersion.length > 0);
});

test('an unreachable socket is a clear error naming DOCKER_HOST', async () => {
  const bad = new DockerClient({ host: `unix:///tmp/launcher-no-such-${randomBytes(3).toString('hex')}.sock` });
  try {
    await bad.ping();
    assert.unreachable();
  } catch (e) {
    assert.is((e as DockerError).code, 'DOCKER_UNREACHABLE');
    assert.match((e as Error).message, /^Cannot reach the Docker Engine at unix:\/\/\/tmp\/launcher-no-such-.*\.sock: ENOENT/);
  } finally {
    await bad.close();
  }
});

test('engine errors carry the status, the engine message and the call that failed', async () => {
  try {
    await createContainer(docker, `launcher-test-${randomBytes(3).toString('hex')}`, { Image: 'launcher-test/no-such-image:latest' });
    assert.unreachable();
  } catch (e) {
    const d = e as DockerError;
    assert.instance(d, DockerError);
    assert.is(d.status, 404);
    assert.is(d.code, 'DOCKER_NOT_FOUND');
    assert.is(d.call, 'create container');
    assert.match(d.message, /^Docker create container failed: 404 No such image: launcher-test\/no-such-image:latest$/);
  }
  try {
    await attachContainer(docker, 'launcher-no-such-container');
    assert.unreachable();
  } catch (e) {
    assert.is((e as DockerError).status, 404);
    assert.match((e as Error).message, /^Docker attach to container failed: 404 No such container: launcher-no-such-container$/);
  }
  // "Not found" on kill and remove is success: the container is gone either way.
  await killContainer(docker, 'launcher-no-such-container', 'SIGKILL');
  await removeContainer(docker, 'launcher-no-such-container');
  assert.is(await inspectContainer(docker, 'launcher-no-such-container'), undefined);
});

test('demuxer: frames cut at every byte position come out whole, in order, per stream', () => {
  const frames = [muxFrame('stdout', Buffer.from('hello ')), muxFrame('stderr', Buffer.from('oops\n')), muxFrame('stdout', new Uint8Array(0)), muxFrame('stdout', Buffer.from('world\n'))];
  const all = Buffer.concat(frames);
  for (let cut1 = 0; cut1 <= all.length; cut1++) {
    for (let cut2 = cut1; cut2 <= all.length; cut2 += 3) {
      const got: string[] = [];
      const d = new Demuxer((c, s) => got.push(`${s}:${Buffer.from(c).toString()}`));
      d.push(all.subarray(0, cut1));
      d.push(all.subarray(cut1, cut2));
      d.push(all.subarray(cut2));
      assert.is(got.filter((g) => !g.endsWith(':')).reduce<string[]>((acc, g) => {
        const [s, t] = [g.slice(0, g.indexOf(':')), g.slice(g.indexOf(':') + 1)];
        const last = acc.at(-1);
        if (last && last.startsWith(`${s}:`)) acc[acc.length - 1] = last + t; else acc.push(`${s}:${t}`);
        return acc;
      }, []).join('|'), 'stdout:hello |stderr:oops\n|stdout:world\n');
      assert.ok(d.atBoundary);
    }
  }
  const big = muxFrame('stdout', new Uint8Array(70000).fill(65));
  let n = 0;
  const d = new Demuxer((c) => { n += c.length; });
  d.push(big);
  assert.is(n, 70000);
});

test('registry credentials: auth or username/password, Docker Hub aliases, nothing for other registries', () => {
  const auths = parseDockerConfig(JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
      'http://127.0.0.1:5000': { username: 'u', password: 'p' },
      'ghcr.io': {},
    },
    credsStore: 'desktop',
  }), 'config.json');
  const decode = (h: string | undefined) => JSON.parse(Buffer.from(h!, 'base64url').toString());
  for (const img of ['alpine', 'library/alpine:3', 'docker.io/library/alpine', 'index.docker.io/x/y:1', 'registry-1.docker.io/x/y']) {
    assert.equal(decode(registryAuthHeader(auths, img)), { username: 'hubuser', password: 'hub:pass', serveraddress: 'https://index.docker.io/v1/' }, img);
  }
  assert.equal(decode(registryAuthHeader(auths, '127.0.0.1:5000/team/img:v1')), { username: 'u', password: 'p', serveraddress: '127.0.0.1:5000' });
  assert.is(registryAuthHeader(auths, 'ghcr.io/x/y'), undefined);
  assert.is(registryAuthHeader(auths, '127.0.0.1:5001/x'), undefined);
  assert.is(imageRegistry('localhost/x'), 'localhost');
  assert.is(normaliseRegistry('https://registry-1.docker.io/v2/'), 'docker.io');
  assert.throws(() => parseDockerConfig('{not json', '/cfg/config.json'), /^Cannot parse \/cfg\/config\.json: not valid JSON/);
  // A malformed file must not echo its credentials: V8 quotes the text around some faults.
  for (const text of ['{"auths":{"r":{"password":hunter2-s3cret}}}', 'hunter2-s3cret', '{"auths":{"r":{"auth":"aHVudGVyMi1zM2NyZXQ="}} x']) {
    try { parseDockerConfig(text, 'c.json'); assert.unreachable('expected a parse error'); } catch (e) {
      assert.match((e as Error).message, /^Cannot parse c\.json: not valid JSON/);
      assert.not.match((e as Error).message, /hunter2|aHVudGVy/);
    }
  }
  assert.throws(() => parseDockerConfig(JSON.stringify({ auths: { r: { auth: Buffer.from('nocolon').toString('base64') } } }), 'c.json'), /the "auth" of registry "r" is not base64 of "username:password"/);
});

test('image references get :latest only when they have no tag or digest', () => {
  assert.is(withDefaultTag('busybox'), 'busybox:latest');
  assert.is(withDefaultTag('127.0.0.1:5000/a/b'), '127.0.0.1:5000/a/b:latest');
  assert.is(withDefaultTag('127.0.0.1:5000/a/b:v1'), '127.0.0.1:5000/a/b:v1');
  assert.is(withDefaultTag('a@sha256:abc'), 'a@sha256:abc');
});

test('import a rootfs tar as an image, inspect it, remove it', async () => {
  const repo = `launcher-test/import-${randomBytes(3).toString('hex')}`;
  const id = await importImage(docker, busyboxRootfs(), repo, 'v1');
  assert.match(id, /^sha256:[0-9a-f]{64}$/);
  const info = await inspectImage(docker, `${repo}:v1`);
  assert.is(info!.Id, id);
  await removeImage(docker, `${repo}:v1`);
  assert.is(await inspectImage(docker, `${repo}:v1`), undefined);
  try {
    await importImage(docker, Readable.from([Buffer.from('not a tar at all')]), repo, 'bad');
    assert.unreachable();
  } catch (e) {
    assert.match((e as Error).message, /^Docker import image launcher-test\/import-[0-9a-f]+:bad failed: /);
  }
});

test('put and get archive stream files in and out of a container; list by label', async () => {
  await ensureTestImage(docker);
  const label = `io.spacelift.launcher.test-${randomBytes(3).toString('hex')}`;
  const id = await createContainer(docker, `launcher-test-archive-${randomBytes(3).toString('hex')}`, {
    Image: TEST_IMAGE, Cmd: ['true'], Labels: { [label]: 'yes' }, HostConfig: { NetworkMode: 'none' },
  });
  try {
    const p = pack();
    p.entry({ name: 'hello.txt' }, 'hello from the host');
    p.entry({ name: 'big.bin' }, Buffer.alloc(2 * 1024 * 1024, 1));
    p.finalize();
    await putArchive(docker, id, '/workspace', Readable.from(p, { objectMode: false }));
    const ex = extract();
    const seen: Record<string, number> = {};
    const reading = (async () => { for await (const e of ex) { let n = 0; for await (const c of e) n += (c as Uint8Array).length; seen[e.header.name] = n; } })();
    for await (const c of await getArchive(docker, id, '/workspace')) ex.write(c as Uint8Array);
    (ex as unknown as { end(): void }).end();
    await reading;
    assert.is(seen['workspace/hello.txt'], 'hello from the host'.length);
    assert.is(seen['workspace/big.bin'], 2 * 1024 * 1024);
    const listed = await listContainers(docker, { [label]: 'yes' });
    assert.equal(listed.map((c) => c.Id), [id]);
    assert.equal(await listContainers(docker, { [label]: 'no' }), []);
    try {
      await getArchive(docker, id, '/no/such/dir');
      assert.unreachable();
    } catch (e) {
      assert.is((e as DockerError).status, 404);
      assert.match((e as Error).message, /^Docker copy from container failed: 404 /);
    }
  } finally {
    await removeContainer(docker, id);
  }
});

test.after(async () => { await docker.close(); });

test.run();
