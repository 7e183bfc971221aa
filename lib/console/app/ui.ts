// Shared pieces of the console's pages: the htm binding, navigation, the page
// frame, data loading with refresh, and small formatting helpers.
import { h, type ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { ApiError, api } from './api.ts';

export const html = htm.bind(h);

// ------------------------------------------------------------ navigation

type Listener = () => void;
const listeners = new Set<Listener>();

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, '', to); else history.pushState(null, '', to);
  window.scrollTo(0, 0);
  for (const l of listeners) l();
}

/** The current location, re-rendering on navigation. */
export function useLocation(): URL {
  const [, setN] = useState(0);
  useEffect(() => {
    const l = (): void => setN((n) => n + 1);
    listeners.add(l);
    window.addEventListener('popstate', l);
    return () => { listeners.delete(l); window.removeEventListener('popstate', l); };
  }, []);
  return new URL(location.href);
}

/** Same-origin links move inside the page instead of loading it again. */
export function interceptLinks(): void {
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
}

/** A message for the next page (e.g. "Saved." after a create moves to the new object's page). */
let flash = '';
export function setFlash(m: string): void { flash = m; }
export function takeFlash(): string { const m = flash; flash = ''; return m; }

// ------------------------------------------------------------ data

export interface Loaded<T> { data: T | undefined; error: ApiError | Error | undefined; reload: () => void }

/** Loads `path` (and again every `everyMs`, while the page is visible). */
export function useGet<T>(path: string | null, everyMs = 0): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const seq = useRef(0);
  const load = useCallback(() => {
    if (!path) return;
    const mine = ++seq.current;
    api<T>('GET', path).then((d) => { if (mine === seq.current) { setData(d); setError(undefined); } },
      (e: Error) => { if (mine === seq.current) setError(e); });
  }, [path]);
  useEffect(() => {
    setData(undefined);
    load();
    if (!everyMs) return;
    const t = setInterval(() => { if (document.visibilityState === 'visible') load(); }, everyMs);
    return () => clearInterval(t);
  }, [load, everyMs]);
  return { data, error, reload: load };
}

/** Runs an action, keeping its error and a busy flag for the button. */
export function useAction(): { busy: boolean; error: Error | undefined; run: (fn: () => Promise<unknown>) => Promise<boolean>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>(undefined);
  const run = async (fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(e as Error);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(undefined) };
}

// ------------------------------------------------------------ pieces

export function ErrorNote({ error }: { error: Error | undefined }) {
  if (!error) return null;
  const code = error instanceof ApiError ? html`<code>${error.code}</code> ` : null;
  return html`<p class="error" role="alert">${code}${error.message}</p>`;
}

export function Loading({ what }: { what: string }) {
  return html`<p class="muted" aria-live="polite">Loading ${what}…</p>`;
}

export function Page({ title, actions, children }: { title: ComponentChildren; actions?: ComponentChildren; children?: ComponentChildren }) {
  useEffect(() => { document.title = `${typeof title === 'string' ? title : 'launcher'} · launcher console`; }, [title]);
  return html`<section class="page">
    <header class="page-head"><h1>${title}</h1>${actions ? html`<div class="actions">${actions}</div>` : null}</header>
    ${children}
  </section>`;
}

export function Badge({ state }: { state: string }) {
  return html`<span class=${`badge s-${String(state).toLowerCase()}`}>${state}</span>`;
}

export function Copy({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState('');
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied');
    } catch {
      // No clipboard permission: say so rather than fail silently; the text is on screen to select.
      setDone('Copy refused by the browser: select the text instead');
    }
    setTimeout(() => setDone(''), 3000);
  };
  return html`<button type="button" class="secondary" onClick=${copy}>${done || label}</button>`;
}

export function Code({ text, label }: { text: string; label: string }) {
  return html`<div class="code-block"><pre aria-label=${label}><code>${text}</code></pre><${Copy} text=${text} label=${`Copy ${label.toLowerCase()}`} /></div>`;
}

/** Offers `text` as a file download (a blob URL, so no request leaves the page). */
/** Saves `body` as the file `name` through the browser's download (a token, a backup archive). */
export function download(name: string, body: string | Uint8Array, type = 'text/plain'): void {
  const url = URL.createObjectURL(new Blob([body as string | Uint8Array<ArrayBuffer>], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  // Revoked once the browser has surely read it (a large archive takes a while).
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export function ago(iso: string | null | undefined): string {
  if (!iso) return '–';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function Time({ iso }: { iso: string | null | undefined }) {
  if (!iso) return html`<span class="muted">–</span>`;
  return html`<time datetime=${iso} title=${iso}>${ago(iso)}</time>`;
}

export function Tags({ tags }: { tags: Record<string, string> | null | undefined }) {
  const entries = Object.entries(tags ?? {});
  if (entries.length === 0) return html`<span class="muted">–</span>`;
  return html`<span class="tags">${entries.map(([k, v]) => html`<span class="tag">${k}=${v}</span>`)}</span>`;
}

/** Reads a chosen file as text (CSR upload). */
export function readFileText(input: HTMLInputElement): Promise<string> {
  const f = input.files?.[0];
  return f ? f.text() : Promise.resolve('');
}
