// The run log on screen: only the rows in view (plus a margin) exist in the
// DOM, each at a fixed height, so a log of 100,000 lines scrolls like one of
// 100. It follows the tail while the reader is at the bottom, and stops
// following as soon as they scroll up to read.
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { segments, sgrClass } from './ansi.ts';
import type { LogLines } from './logstore.ts';
import { html } from './ui.ts';

export const ROW_PX = 18;
const MARGIN_ROWS = 30;

function Row({ store, i }: { store: LogLines; i: number }) {
  const mark = store.marks.get(i);
  const top = { top: `${i * ROW_PX}px` };
  if (mark) return html`<div class="row phase-head" style=${top} data-line=${i}>▸ phase ${mark.index + 1}: ${mark.name}</div>`;
  const segs = segments(store.line(i), store.start(i));
  return html`<div class="row" style=${top} data-line=${i}>${segs.map((s) => {
    const cls = sgrClass(s.sgr);
    const style: Record<string, string> = {};
    if (typeof s.sgr.fg === 'string') style.color = s.sgr.fg;
    if (typeof s.sgr.bg === 'string') style.backgroundColor = s.sgr.bg;
    return cls || style.color || style.backgroundColor ? html`<span class=${cls} style=${style}>${s.text}</span>` : s.text;
  })}</div>`;
}

export function LogView({ store, version, label }: { store: LogLines; version: number; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const [follow, setFollow] = useState(true);
  const programmatic = useRef(false);

  useEffect(() => {
    const el = box.current!;
    let frame = 0;
    const onScroll = (): void => {
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        setView({ top: el.scrollTop, height: el.clientHeight });
        if (programmatic.current) { programmatic.current = false; return; }
        setFollow(el.scrollTop + el.clientHeight >= el.scrollHeight - ROW_PX * 2);
      });
    };
    const onResize = (): void => setView({ top: el.scrollTop, height: el.clientHeight });
    el.addEventListener('scroll', onScroll, { passive: true });
    window.addEventListener('resize', onResize);
    onResize();
    return () => { el.removeEventListener('scroll', onScroll); window.removeEventListener('resize', onResize); cancelAnimationFrame(frame); };
  }, []);

  // Following: keep the last line in view as lines arrive.
  useLayoutEffect(() => {
    const el = box.current!;
    if (!follow) return;
    const bottom = Math.max(0, store.length * ROW_PX - el.clientHeight);
    if (Math.abs(el.scrollTop - bottom) > 1) {
      programmatic.current = true;
      el.scrollTop = bottom;
      setView({ top: bottom, height: el.clientHeight });
    }
  }, [version, follow]);

  const n = store.length;
  const first = Math.max(0, Math.floor(view.top / ROW_PX) - MARGIN_ROWS);
  const last = Math.min(n, Math.ceil((view.top + view.height) / ROW_PX) + MARGIN_ROWS);
  const rows = [];
  for (let i = first; i < last; i++) rows.push(html`<${Row} key=${i} store=${store} i=${i} />`);
  return html`<div class="log-wrap">
    <div class="log-bar">
      <span class="muted" aria-live="off">${n.toLocaleString('en')} lines</span>
      <button type="button" class="secondary small" aria-pressed=${follow} onClick=${() => setFollow(!follow)}>${follow ? 'Following the tail' : 'Follow the tail'}</button>
    </div>
    <div class="log" ref=${box} role="log" aria-label=${label} tabindex="0">
      <div class="log-inner" style=${{ height: `${n * ROW_PX}px` }}>${rows}</div>
    </div>
  </div>`;
}
