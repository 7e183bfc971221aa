// The build stamps these through esbuild `define`; running from source they
// fall back to the package version and "source".
declare const LAUNCHER_BUILD_VERSION: string | undefined;
declare const LAUNCHER_BUILD_COMMIT: string | undefined;

export const VERSION: string = typeof LAUNCHER_BUILD_VERSION === 'string' ? LAUNCHER_BUILD_VERSION : '0.1.0';
export const COMMIT: string = typeof LAUNCHER_BUILD_COMMIT === 'string' ? LAUNCHER_BUILD_COMMIT : 'source';
