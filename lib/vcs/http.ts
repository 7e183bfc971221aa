// isomorphic-git's HTTP client interface over undici. Its own Node client goes
// through the deprecated url.parse (a DEP0169 warning in every run) and a
// second HTTP stack; this one reuses the undici the launcher already ships,
// honours an abort signal, and never logs headers (the Authorization header
// carries the repository credential).
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';

/** The request/response shapes isomorphic-git's `http` option expects (GitHttpRequest/GitHttpResponse). */
export interface GitHttpRequest {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: AsyncIterable<Uint8Array> | Iterable<Uint8Array>;
  signal?: AbortSignal;
}
export interface GitHttpResponse {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: AsyncIterableIterator<Uint8Array>;
  statusCode: number;
  statusMessage: string;
}

async function collect(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of body as AsyncIterable<Uint8Array>) parts.push(c);
  return Buffer.concat(parts);
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Found', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

export function undiciGitHttp(opts: { dispatcher?: Dispatcher; signal?: AbortSignal } = {}): { request(r: GitHttpRequest): Promise<GitHttpResponse> } {
  return {
    async request(r) {
      // Upload-pack requests are small and some servers need a Content-Length.
      const body = r.body === undefined ? undefined : await collect(r.body);
      const signal = r.signal ?? opts.signal;
      const res = await request(r.url, {
        method: (r.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: r.headers ?? {},
        ...(body !== undefined ? { body } : {}),
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
        ...(signal ? { signal } : {}),
      });
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
      const stream = res.body as unknown as Readable;
      return {
        url: r.url,
        method: r.method ?? 'GET',
        headers,
        body: stream[Symbol.asyncIterator]() as AsyncIterableIterator<Uint8Array>,
        statusCode: res.statusCode,
        statusMessage: STATUS_TEXT[res.statusCode] ?? '',
      };
    },
  };
}
