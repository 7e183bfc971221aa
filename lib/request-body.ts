// The body of a request to the server's APIs, with its content type: JSON for
// a typed request (lib/protocol.ts), raw bytes for sealed files and log
// chunks. The admin client and the launcher's worker-API client both send so.
export function requestBody<B>(o: { json?: unknown; body?: B }): { body: string | B | undefined; contentType: string | undefined } {
  if (o.json !== undefined) return { body: JSON.stringify(o.json), contentType: 'application/json' };
  if (o.body !== undefined) return { body: o.body, contentType: 'application/octet-stream' };
  return { body: undefined, contentType: undefined };
}
