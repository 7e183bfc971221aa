// The console's entry: checks the session, then renders the page for the
// current path. Pages are client-side routes the server also answers with
// this shell (so links and reloads work), and only with a session.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { setSession, whenSignedOut, api } from './api.ts';
import type { ConsoleSession } from '../../protocol.ts';
import { html, interceptLinks, navigate, useLocation } from './ui.ts';
import { AuditPage } from './pages/audit.ts';
import { BackupPage } from './pages/backup.ts';
import { GcPage } from './pages/gc.ts';
import { NewPoolPage, PoolPage, PoolsPage } from './pages/pools.ts';
import { RunPage, RunsPage } from './pages/runs.ts';
import { SignInPage } from './pages/signin.ts';
import { StackPage, StacksPage } from './pages/stacks.ts';
import { WorkersPage } from './pages/workers.ts';

const NAV: [string, string][] = [['/pools', 'Worker pools'], ['/workers', 'Workers'], ['/stacks', 'Stacks'], ['/modules', 'Modules'], ['/runs', 'Runs'], ['/audit', 'Audit log'], ['/backup', 'Backup'], ['/retention', 'Retention']];

function route(path: string, q: URLSearchParams) {
  const seg = path.split('/').filter(Boolean).map(decodeURIComponent);
  switch (seg[0]) {
    case 'pools': return seg[1] === 'new' ? html`<${NewPoolPage} />` : seg[1] ? html`<${PoolPage} id=${seg[1]} />` : html`<${PoolsPage} />`;
    case 'workers': return html`<${WorkersPage} />`;
    case 'stacks': return seg[1] === 'new' ? html`<${StackPage} key="new" id=${null} kind=${q.get('kind') ?? 'stack'} />` : seg[1] ? html`<${StackPage} key=${seg[1]} id=${seg[1]} />` : html`<${StacksPage} key="stacks" kind="stack" />`;
    case 'modules': return html`<${StacksPage} key="modules" kind="module" />`;
    case 'runs': return seg[1] ? html`<${RunPage} key=${seg[1]} id=${seg[1]} />` : html`<${RunsPage} />`;
    case 'audit': return html`<${AuditPage} />`;
    case 'backup': return html`<${BackupPage} />`;
    case 'retention': return html`<${GcPage} />`;
    default: return html`<${PoolsPage} />`;
  }
}

function App({ initiallySignedIn }: { initiallySignedIn: boolean }) {
  const loc = useLocation();
  const [signedIn, setSignedIn] = useState(initiallySignedIn);
  useEffect(() => whenSignedOut(() => {
    setSignedIn(false);
    navigate(`/signin?next=${encodeURIComponent(location.pathname + location.search)}`, true);
  }), []);
  useEffect(() => {
    if (!signedIn && loc.pathname !== '/signin') navigate(`/signin?next=${encodeURIComponent(loc.pathname + loc.search)}`, true);
  }, [signedIn, loc.pathname]);
  // After moving to another page, keyboard and screen-reader focus starts at its content.
  const firstPath = useRef(loc.pathname);
  useEffect(() => {
    if (loc.pathname === firstPath.current) return;
    firstPath.current = '';
    document.getElementById('main')?.focus({ preventScroll: true });
  }, [loc.pathname]);
  const signOut = async (): Promise<void> => {
    await api('DELETE', '/console/session').catch(() => {});
    setSignedIn(false);
    navigate('/signin', true);
  };
  const here = '/' + (loc.pathname.split('/')[1] ?? '');
  return html`<a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href="/pools">launcher</a>
      ${signedIn ? html`<nav aria-label="Main"><ul>${NAV.map(([href, label]) => html`<li><a href=${href} aria-current=${here === href ? 'page' : undefined}>${label}</a></li>`)}</ul></nav>
        <button type="button" class="secondary small signout" onClick=${signOut}>Sign out</button>` : null}
    </header>
    <main id="main" tabindex="-1">${signedIn && loc.pathname !== '/signin' ? route(loc.pathname, loc.searchParams) : html`<${SignInPage} onSignedIn=${() => setSignedIn(true)} />`}</main>`;
}

async function start(): Promise<void> {
  interceptLinks();
  const res = await fetch('/console/session', { credentials: 'same-origin', cache: 'no-store' });
  const s = await res.json() as ConsoleSession;
  if (s.signedIn) setSession(s);
  if (s.signedIn && location.pathname === '/signin') {
    const next = new URL(location.href).searchParams.get('next');
    history.replaceState(null, '', next && next.startsWith('/') && !next.startsWith('//') ? next : '/pools');
  } else if (s.signedIn && location.pathname === '/') {
    history.replaceState(null, '', '/pools');
  }
  render(html`<${App} initiallySignedIn=${s.signedIn} />`, document.getElementById('app')!);
  document.documentElement.dataset.ready = '1';
  // For the first-load benchmark: the moment the page is usable.
  performance.mark('console-ready');
}

void start();
