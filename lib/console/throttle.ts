// Sign-in throttling: wrong admin tokens from one client address make it wait
// before its next try. A few mistakes are free; after that the wait doubles
// with each further wrong token, up to a short ceiling, so a guesser gets a
// handful of tries a minute while the real admin, even behind the same
// address, is never kept out longer than the ceiling after the last wrong
// token. Tries refused while waiting are not checked and do not lengthen the
// wait (so hammering the endpoint cannot extend a lock-out). Pure: the clock
// is passed in.

/** Wrong tokens in a row that cost nothing. */
export const FREE_FAILURES = 5;
/** The first wait, doubled for each further wrong token. */
export const FIRST_WAIT_MS = 1_000;
/** The longest wait. */
export const MAX_WAIT_MS = 60_000;
/** An address's failures are forgotten this long after its last wrong token. */
export const FORGET_AFTER_MS = 15 * 60_000;
const MAX_ADDRESSES = 10_000;

interface Entry { failures: number; last: number; until: number }

/**
 * What one client is: its IPv4 address, or the /64 of its IPv6 address (one
 * host usually holds a whole /64, so counting single addresses would let it
 * rotate through them).
 */
export function clientKey(address: string | null | undefined): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t] : h;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

export class SignInThrottle {
  private readonly byClient = new Map<string, Entry>();
  private readonly now: () => number;
  constructor(now: () => number = Date.now) { this.now = now; }

  /** Milliseconds this client must still wait before a token is checked (0: check it now). */
  waitMs(client: string): number {
    const e = this.live(client);
    return e ? Math.max(0, e.until - this.now()) : 0;
  }

  /** A wrong token from this client; returns how long it must now wait. */
  failed(client: string): number {
    const t = this.now();
    const e = this.live(client) ?? { failures: 0, last: t, until: 0 };
    e.failures += 1;
    e.last = t;
    const over = e.failures - FREE_FAILURES;
    e.until = over > 0 ? t + Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** Math.min(over - 1, 30)) : 0;
    this.byClient.delete(client);
    // Oldest first out: many addresses cannot grow memory without bound.
    while (this.byClient.size >= MAX_ADDRESSES) this.byClient.delete(this.byClient.keys().next().value as string);
    this.byClient.set(client, e);
    return Math.max(0, e.until - t);
  }

  /** The right token: this client starts afresh. */
  succeeded(client: string): void { this.byClient.delete(client); }

  get size(): number { return this.byClient.size; }

  private live(client: string): Entry | undefined {
    const e = this.byClient.get(client);
    if (e && this.now() - e.last >= FORGET_AFTER_MS && this.now() >= e.until) {
      this.byClient.delete(client);
      return undefined;
    }
    return e;
  }
}
