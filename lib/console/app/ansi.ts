// ANSI colour codes in run logs (terraform, docker, test runners print them)
// turned into styled segments. Pure: the log view keeps only the state at the
// start of each line and parses a line when it scrolls into view, so a log of
// 100,000 lines costs one pass at arrival and then only what is on screen.

export interface Sgr {
  fg: number | string | null; // 0-15 palette index, or an rgb() string
  bg: number | string | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
}

export interface Segment { text: string; sgr: Sgr }

export const PLAIN: Sgr = Object.freeze({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false }) as Sgr;

// Everything that is an escape sequence: CSI (ESC [ … final), OSC (ESC ] … BEL/ST), and two-byte ESC x.
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

function color256(n: number): number | string {
  if (n < 16) return n;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  const i = n - 16;
  const c = (x: number): number => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${c(Math.floor(i / 36))},${c(Math.floor(i / 6) % 6)},${c(i % 6)})`;
}

/** The state after applying the parameters of one `ESC [ … m`. */
export function applySgr(state: Sgr, params: string): Sgr {
  const codes = params === '' ? [0] : params.split(/[;:]/).map((p) => (p === '' ? 0 : Number(p)));
  const s: Sgr = { ...state };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c === 0) Object.assign(s, PLAIN);
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 22) { s.bold = false; s.dim = false; }
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = null;
    else if (c === 38 || c === 48) {
      let v: number | string | null = null;
      if (codes[i + 1] === 5 && codes[i + 2] !== undefined) { v = color256(codes[i + 2]! & 255); i += 2; }
      else if (codes[i + 1] === 2 && codes[i + 4] !== undefined) {
        v = `rgb(${codes[i + 2]! & 255},${codes[i + 3]! & 255},${codes[i + 4]! & 255})`;
        i += 4;
      }
      if (c === 38) s.fg = v; else s.bg = v;
    }
  }
  return s;
}

/** What a terminal shows for a line that contains carriage returns: the text after the last one. */
function afterCarriageReturn(line: string): string {
  const r = line.lastIndexOf('\r', line.length - 2);
  return r < 0 ? line.replace(/\r$/, '') : line.slice(r + 1).replace(/\r$/, '');
}

/** Splits one line into styled segments, starting from `state`; escape sequences other than colours are dropped. */
export function segments(line: string, state: Sgr): Segment[] {
  line = afterCarriageReturn(line);
  if (!line.includes('\x1b')) return [{ text: line, sgr: state }];
  const out: Segment[] = [];
  let s = state;
  let last = 0;
  for (const m of line.matchAll(ESCAPES)) {
    if (m.index! > last) out.push({ text: line.slice(last, m.index), sgr: s });
    const seq = m[0];
    if (seq.startsWith('\x1b[') && seq.endsWith('m')) s = applySgr(s, seq.slice(2, -1));
    last = m.index! + seq.length;
  }
  if (last < line.length) out.push({ text: line.slice(last), sgr: s });
  return out;
}

/** The state at the end of a line (what the next line starts with). */
export function endState(line: string, state: Sgr): Sgr {
  if (!line.includes('\x1b[')) return state;
  let s = state;
  for (const m of line.matchAll(/\x1b\[([0-9;:]*)m/g)) s = applySgr(s, m[1]!);
  return s;
}

/** The CSS classes of a state (palette colours are classes; others need a style). */
export function sgrClass(s: Sgr): string {
  const c: string[] = [];
  if (typeof s.fg === 'number') c.push(`f${s.fg}`);
  if (typeof s.bg === 'number') c.push(`b${s.bg}`);
  if (s.bold) c.push('ab');
  if (s.dim) c.push('ad');
  if (s.italic) c.push('ai');
  if (s.underline) c.push('au');
  return c.join(' ');
}
