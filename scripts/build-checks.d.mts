// Types for build-checks.mjs (plain JavaScript so build.mjs runs without a loader).
export function commandModules(launcherSource: string): string[];
export function missingCommandModules(launcherSource: string, bundledInputs: string[]): string[];
export function leftoverDynamicImports(bundleText: string): string[];
export function undiciSlimProblems(root: string): string[];
