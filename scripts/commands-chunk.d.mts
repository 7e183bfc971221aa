// Types for commands-chunk.mjs (plain JavaScript so build.mjs runs without a loader).
export const CHUNK_FILE: string;
export const CHUNK_CACHE: string;
export const MAIN_COMMANDS: Set<string>;
export function chunkEntry(commandModules: Record<string, string>): string;
export const loaderBanner: string;
export function chunkCommandsPlugin(launcherPath: string, chunkCommands: Record<string, string>): unknown;
export function asciiOnly(text: string): string;
export function makeChunkCodeCache(node: string, chunkPath: string, cachePath: string): void;
