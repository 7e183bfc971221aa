// Types for import-cycles.mjs (plain JavaScript so build.mjs runs without a loader).
export type ImportGraph = Record<string, string[]>;
export function importCycles(graph: ImportGraph, under?: string): string[][];
export function importCycleProblems(graph: ImportGraph, under?: string): string[];
export function importsOf(source: string): string[];
export function libImportGraph(root: string): ImportGraph;
