import type { CommandIo } from './io.ts';
import { LauncherError } from '../errors.ts';

// Placeholder until this command is built; see the open issues.
export async function run(_io: CommandIo): Promise<number> {
  throw new LauncherError('NOT_BUILT', 'The "server" command is not built yet');
}
