// Where to pick up a container's output after the launcher restarts, without
// reading its whole log again. While a phase runs, the launcher notes points
// in the raw output where the masker holds nothing back and the output ends a
// line ("at rest": a fresh masker with the same values would go on exactly as
// this one). Every few seconds it asks the engine for the log entries written
// since the last anchor, with their timestamps, and finds the newest entry
// boundary that is one of those points: hashing the entries' bytes and
// comparing with the hash of what it received through attach proves that the
// two agree byte for byte (if the engine ordered stdout and stderr
// differently, they do not, and the anchor stays where it was). The anchor
// (the entry's timestamp, how many entries share it, the raw and masked byte
// counts there, and the values added to the masker at run time, sealed) is
// written to the state directory. After a restart the log is read from that
// timestamp on, the entries up to the anchor are dropped, and masking goes on
// from the anchor's masked byte count. Without an anchor, the old way: the
// whole log again, masked again, the stored bytes skipped.
import { createHash, type Hash } from 'node:crypto';
import { TimestampedFrames, type LogEntry } from '../docker/logs.ts';

export interface LogCheckpoint {
  /** The anchor entry's engine timestamp (RFC 3339, nanoseconds). */
  since: string;
  /** Entries the engine returns for `since` up to and including the anchor (several may share a timestamp). */
  skipEntries: number;
  /** Raw output bytes up to the anchor. */
  rawBytes: number;
  /** Masked bytes the launcher produced up to the anchor. */
  maskedBytes: number;
  /** Values added to the masker at run time (`::add-mask::`), sealed to the pool's keys, base64; null when none. */
  addedMasks: string | null;
  runId: string;
  phase: number;
}

interface AtRest { raw: number; masked: number; digest: string; state: Hash }

export interface Anchor { since: string; skipEntries: number; rawBytes: number; maskedBytes: number }

/** How many at-rest points are remembered between two anchors (older ones are dropped first). */
const MAX_POINTS = 4096;

/** Follows the raw output and the masker, and finds verified anchors in the engine's log entries. */
export class CheckpointTracker {
  #raw: number;
  #masked: number;
  #hash: Hash = createHash('sha256');
  #points: AtRest[] = [];
  #anchor: (Anchor & { state: Hash }) | null;

  /** `from`: the anchor this output starts at (a resumed phase), or null for the start of the log. */
  constructor(from: Anchor | null) {
    this.#raw = from?.rawBytes ?? 0;
    this.#masked = from?.maskedBytes ?? 0;
    this.#anchor = from ? { ...from, state: this.#hash.copy() } : null;
  }

  get rawBytes(): number { return this.#raw; }
  get maskedBytes(): number { return this.#masked; }
  /** The `since` and `skipEntries` to ask the engine for (null since: from the start). */
  get anchor(): Anchor | null {
    if (!this.#anchor) return null;
    const { state: _s, ...a } = this.#anchor;
    return a;
  }

  /** Masked bytes produced (container output and launcher notes alike), before anything is skipped. */
  addMasked(n: number): void { this.#masked += n; }

  /** Raw container output, after the masker took it and its output was counted; `atRest`: the masker's state now. */
  observe(raw: Uint8Array, atRest: boolean): void {
    this.#hash.update(raw);
    this.#raw += raw.length;
    if (atRest && raw.length > 0) {
      this.#points.push({ raw: this.#raw, masked: this.#masked, digest: this.#hash.copy().digest('hex'), state: this.#hash.copy() });
      if (this.#points.length > MAX_POINTS) this.#points.shift();
    }
  }

  /**
   * Entries the engine returned for the current anchor's `since` (all of the
   * log when there is none): the newest entry boundary that is an at-rest
   * point and whose bytes hash to what attach delivered becomes the anchor.
   * Returns it, or undefined when there is no new one.
   */
  advance(entries: LogEntry[]): Anchor | undefined {
    const start = this.#anchor;
    let i = 0;
    const sameTs = new Map<string, number>();
    const count = (ts: string): number => { const n = (sameTs.get(ts) ?? 0) + 1; sameTs.set(ts, n); return n; };
    if (start) {
      for (; i < start.skipEntries && i < entries.length; i++) count(entries[i]!.ts);
      if (i < start.skipEntries) return undefined;
    }
    const base = start?.rawBytes ?? 0;
    const h = start ? start.state.copy() : createHash('sha256');
    let pos = base;
    let p = this.#points.findIndex((x) => x.raw > base);
    if (p === -1) return undefined;
    let found: { point: AtRest; since: string; skipEntries: number } | undefined;
    for (; i < entries.length; i++) {
      const e = entries[i]!;
      const k = count(e.ts);
      h.update(e.payload);
      pos += e.payload.length;
      while (p < this.#points.length && this.#points[p]!.raw < pos) p++;
      if (p >= this.#points.length) break;
      const pt = this.#points[p]!;
      if (pt.raw !== pos) continue;
      // An entry ends where attach was at rest: the bytes must be the same.
      if (h.copy().digest('hex') !== pt.digest) break;
      found = { point: pt, since: e.ts, skipEntries: k };
    }
    if (!found) return undefined;
    const anchor: Anchor = { since: found.since, skipEntries: found.skipEntries, rawBytes: found.point.raw, maskedBytes: found.point.masked };
    this.#anchor = { ...anchor, state: found.point.state };
    this.#points = this.#points.filter((x) => x.raw > found!.point.raw);
    return anchor;
  }
}

/** How often the engine is asked for the entries since the last anchor. */
export const CHECKPOINT_INTERVAL_MS = 5000;
/** Entries since the anchor larger than this are not gathered (the anchor waits for a quieter moment). */
const MAX_FETCH_BYTES = 64 * 1024 * 1024;

export interface CheckpointLoop {
  tracker: CheckpointTracker;
  /** The phase container's id, once it exists. */
  container(): Promise<string | undefined>;
  /** Entries at or after `since` (all when null), with timestamps, not following. */
  fetch(containerId: string, since: string | null): Promise<AsyncIterable<unknown>>;
  /** The values added to the masker at run time, sealed (null when none). */
  sealedAdded(): Promise<string | null>;
  save(cp: Omit<LogCheckpoint, 'runId' | 'phase'>): void;
  onError(e: Error): void;
  intervalMs?: number;
}

/** Advances the anchor every few seconds while the phase runs; returns a stop function. */
export function startCheckpoints(o: CheckpointLoop): () => void {
  let busy = false;
  let stopped = false;
  const tick = async (): Promise<void> => {
    if (busy || stopped) return;
    busy = true;
    try {
      const id = await o.container();
      if (!id || stopped) return;
      const frames = new TimestampedFrames();
      const entries: LogEntry[] = [];
      let bytes = 0;
      for await (const c of await o.fetch(id, o.tracker.anchor?.since ?? null)) {
        bytes += (c as Buffer).length;
        if (bytes > MAX_FETCH_BYTES) return;
        entries.push(...frames.push(c as Buffer));
      }
      if (stopped) return;
      const anchor = o.tracker.advance(entries);
      if (anchor) o.save({ ...anchor, addedMasks: await o.sealedAdded() });
    } catch (e) {
      o.onError(e as Error);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => { void tick(); }, o.intervalMs ?? CHECKPOINT_INTERVAL_MS);
  timer.unref();
  return () => { stopped = true; clearInterval(timer); };
}
