// How the server names and dates what it stores: random ids with a noun
// prefix (pool_, wrk_, stk_, run_, key_), ISO-8601 UTC times, and certificate
// serials in one spelling (lower-case hex without leading zeros) whichever
// tool printed them.
import { randomBytes } from 'node:crypto';

export const newId = (prefix: string): string => `${prefix}_${randomBytes(8).toString('hex')}`;
export const iso = (ms = Date.now()): string => new Date(ms).toISOString();
export const normSerial = (s: string): string => s.toLowerCase().replace(/^0+(?=.)/, '');
