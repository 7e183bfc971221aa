// Hostile clients for the soak and the hostile-connections bench: N raw TCP
// connections to the server that never say a word (no TLS ClientHello), spread
// over loopback source addresses, each reopened shortly after the server
// closes it, so the server faces N idle sockets for as long as this runs.
//
//   node --import tsx bench/load/hostile.ts PORT N FIRST_ADDRESS_INDEX ADDRESSES
//
// Addresses are 127.0.<i / 250 + 2>.<i % 250 + 1>, never 127.0.0.1 (the
// launchers' address), so the per-address cap counts them apart. Prints one
// JSON line a second: {open, opened, closedByServer, failed}.
import { connect, type Socket } from 'node:net';

const [portArg, nArg, firstArg, addrArg] = process.argv.slice(2);
const PORT = Number(portArg);
const N = Number(nArg);
const FIRST = Number(firstArg ?? 0);
const ADDRESSES = Number(addrArg ?? 100);
const REOPEN_MS = 200;

export function hostileAddress(i: number): string {
  return `127.0.${Math.floor(i / 250) + 2}.${(i % 250) + 1}`;
}

let open = 0;
let opened = 0;
let closedByServer = 0;
let failed = 0;
let stopping = false;

function one(slot: number): void {
  if (stopping) return;
  const s: Socket = connect({ host: '127.0.0.1', port: PORT, localAddress: hostileAddress(FIRST + (slot % ADDRESSES)) });
  let connected = false;
  s.on('connect', () => { connected = true; open++; opened++; });
  s.on('error', () => { if (!connected) failed++; });
  s.on('close', () => {
    if (connected) { open--; closedByServer++; }
    if (!stopping) setTimeout(() => one(slot), REOPEN_MS).unref();
  });
}

if (process.argv[1]?.endsWith('hostile.ts')) {
  // Open gradually (a SYN flood of our own would only measure the kernel's backlog).
  let started = 0;
  const ramp = setInterval(() => {
    for (let k = 0; k < 500 && started < N; k++) one(started++);
    if (started >= N) clearInterval(ramp);
  }, 50);
  const report = setInterval(() => console.log(JSON.stringify({ open, opened, closedByServer, failed })), 1000);
  const stop = (): void => { stopping = true; clearInterval(report); clearInterval(ramp); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
