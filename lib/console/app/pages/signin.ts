// Sign-in: the admin token (DATA/admin.token) is exchanged for a session
// cookie the page's script cannot read; the token itself is not kept.
import { useState } from 'preact/hooks';
import { ApiError, setSession } from '../api.ts';
import type { ConsoleSession, ErrorBody, SignInRequest } from '../../../protocol.ts';
import { ErrorNote, Page, html, navigate, useAction, useLocation } from '../ui.ts';

export function SignInPage({ onSignedIn }: { onSignedIn: () => void }) {
  const loc = useLocation();
  const [token, setToken] = useState('');
  const act = useAction();
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    await act.run(async () => {
      const res = await fetch('/console/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: token.trim() } satisfies SignInRequest), credentials: 'same-origin' });
      const body = await res.json() as ConsoleSession & Partial<ErrorBody>;
      if (!res.ok) throw new ApiError(body?.error?.code ?? `HTTP_${res.status}`, body?.error?.message ?? `The server answered ${res.status}`, res.status);
      setSession(body);
      setToken('');
      onSignedIn();
      const next = loc.searchParams.get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/pools', true);
    });
  };
  return html`<${Page} title="Sign in">
    <form class="form narrow" onSubmit=${submit}>
      <div class="field"><label for="admin-token">Admin token</label>
        <input id="admin-token" name="token" type="password" required autocomplete="current-password" spellcheck=${false} aria-describedby="admin-token-help"
          value=${token} onInput=${(e: Event) => setToken((e.target as HTMLInputElement).value)} />
        <p id="admin-token-help" class="muted small">The server printed it on first start; it is in <code>DATA/admin.token</code>.</p></div>
      <${ErrorNote} error=${act.error} />
      <button type="submit" disabled=${act.busy}>Sign in</button>
    </form>
  </${Page}>`;
}
