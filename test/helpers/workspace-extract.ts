// Extracts a workspace tar file into a directory with lib/workspace.ts, as a
// separate process, so a test can run it as another (non-root) user:
//   node --import tsx test/helpers/workspace-extract.ts TAR DEST
// Prints "ok" or the error message; exits 0 either way unless it crashed.
import { createReadStream } from 'node:fs';
import { extractToDirectory } from '../../lib/workspace.ts';

const [tar, dest] = process.argv.slice(2);
extractToDirectory(createReadStream(tar!), dest!).then(
  () => console.log('ok'),
  (e: unknown) => console.log((e as Error).message),
);
