// GET /v1/runs/{run}/events: one run as server-sent events, for the console's
// run page (any SSE client works). It sends the run whenever it changes and
// its stored (masked) log as it arrives, phase after phase, then `end` once
// the run has ended and every byte went out. Each log event's id is
// "PHASE:OFFSET", so a reconnecting EventSource resumes where it stopped
// (Last-Event-ID) instead of receiving the log twice.
//
//   event: run   data: Run (docs/api.md)
//   event: log   data: {"phase": 0, "offset": 0, "text": "…"}   id: 0:4821
//   event: end   data: {}
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import type { Ctx } from './http.ts';
import { isTerminal } from '../protocol.ts';
import type { Service } from './service.ts';
import type { RunLogEvent, RunView } from '../protocol.ts';

/** The most log bytes one event carries; a long log goes out as many events. */
export const EVENT_LOG_BYTES = 256 * 1024;
const HEARTBEAT_MS = 20_000;

/** Parses a Last-Event-ID of the form "PHASE:OFFSET"; anything else starts from the beginning. */
export function resumePoint(v: unknown, phaseCount: number): { phase: number; offset: number } {
  const m = typeof v === 'string' ? /^(\d{1,4}):(\d{1,15})$/.exec(v) : null;
  if (!m) return { phase: 0, offset: 0 };
  const phase = Number(m[1]);
  if (phase >= phaseCount) return { phase: 0, offset: 0 };
  return { phase, offset: Number(m[2]) };
}

export async function streamRunEvents(s: Service, ctx: Ctx, runId: string, view: () => RunView): Promise<void> {
  const { req, res } = ctx;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const gone = new AbortController();
  res.on('close', () => gone.abort());
  const heartbeat = setInterval(() => { if (!res.destroyed) res.write(':\n\n'); }, HEARTBEAT_MS);
  heartbeat.unref();

  const send = async (text: string): Promise<void> => {
    if (res.destroyed) return;
    if (!res.write(text)) {
      await new Promise<void>((resolve) => {
        const done = (): void => { res.off('drain', done); res.off('close', done); resolve(); };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  };

  let lastRun = '';
  const first = s.store.runs.get(runId)!;
  let { phase, offset } = resumePoint(req.headers['last-event-id'], first.phase_count);
  // Bytes of a UTF-8 character cut by a chunk wait for the rest of it.
  let decoder = new StringDecoder('utf8');
  try {
    await send('retry: 2000\n\n');
    for (;;) {
      if (res.destroyed) return;
      const run = s.store.runs.get(runId)!;
      const current = JSON.stringify(view());
      if (current !== lastRun) {
        lastRun = current;
        await send(`event: run\ndata: ${current}\n\n`);
        continue;
      }
      const ph = s.store.runs.phase(runId, phase);
      if (ph && ph.log_bytes > offset) {
        const end = Math.min(ph.log_bytes, offset + EVENT_LOG_BYTES);
        const bytes = await s.opts.logs.read(runId, phase, offset, end);
        const start = offset;
        offset += bytes.length;
        if (bytes.length === 0) throw new Error(`log file of ${runId} phase ${phase} is shorter than the database says`);
        const text = decoder.write(bytes);
        const ev: RunLogEvent = { phase, offset: start, text };
        await send(`id: ${phase}:${offset}\nevent: log\ndata: ${JSON.stringify(ev)}\n\n`);
        continue;
      }
      // This phase has ended and everything it logged went out: next phase.
      if (ph && (ph.outcome !== null || isTerminal(run.state)) && phase < run.phase_count - 1 && run.phase > phase) {
        const rest = decoder.end();
        if (rest) await send(`event: log\ndata: ${JSON.stringify({ phase, offset, text: rest })}\n\n`);
        phase++;
        offset = 0;
        decoder = new StringDecoder('utf8');
        continue;
      }
      if (isTerminal(run.state)) {
        const rest = decoder.end();
        if (rest) await send(`event: log\ndata: ${JSON.stringify({ phase, offset, text: rest })}\n\n`);
        await send('event: end\ndata: {}\n\n');
        return;
      }
      // Nothing new: wait for this run's next event. Registered in the same
      // tick as the checks above, so nothing can slip between them.
      await once(s.events, runId, { signal: gone.signal });
    }
  } catch (e) {
    if ((e as Error).name === 'AbortError') return;
    throw e;
  } finally {
    clearInterval(heartbeat);
    if (!res.destroyed) res.end();
  }
}
