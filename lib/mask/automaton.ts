// The matching core of the masker: an Aho-Corasick automaton compiled to a
// dense DFA. Why Aho-Corasick rather than buildkite's per-start-position
// partial matches: a run may carry 100+ secrets, each with six or more
// encoded forms, and the automaton keeps the cost per byte constant however
// many patterns there are. A mismatch falls back along failure links instead
// of restarting at the current byte, so the gitlab-runner bug (`aab` written
// as `aa` + `ab` leaking secret `ab`) cannot happen.
// ---------------------------------------------------------------------------
// The automaton. States are stored as row offsets into one dense transition
// table over byte classes (bytes that occur in no pattern share class 0, which
// keeps the table small). A transition into a state where something ends is
// stored bitwise-negated, so the hot loop tests one sign bit per byte.

export interface Automaton {
  delta: Int32Array;
  cls: Uint16Array;
  width: number; // number of byte classes = row length
  // Per state: how many trailing bytes could still begin a match, i.e. the
  // longest suffix of the stream that a pattern extends (a completed match
  // with nothing beyond it holds nothing back).
  hold: Int32Array;
  maskLen: Int32Array; // per state: longest mask pattern ending here (0: none)
  directive: Uint8Array; // per state: the add-mask marker ends here
  maxDepth: number; // longest pattern
}

/** The automaton over `patterns`, plus `directive` (the add-mask marker) when given. */
export function buildAutomaton(patterns: Uint8Array[], marker: Uint8Array | undefined): Automaton {
  const withDirective = marker !== undefined;
  const all = withDirective ? [...patterns, marker] : patterns;
  const dirIndex = withDirective ? all.length - 1 : -1;
  const cls = new Uint16Array(256);
  let width = 1;
  for (const p of all) for (const b of p) if (cls[b] === 0) cls[b] = width++;
  let capacity = 1;
  for (const p of all) capacity += p.length;

  const next = new Int32Array(capacity * width).fill(-1);
  const depth = new Int32Array(capacity);
  const maskLen = new Int32Array(capacity);
  const directive = new Uint8Array(capacity);
  const hasChild = new Uint8Array(capacity);
  let states = 1;
  all.forEach((p, pi) => {
    let s = 0;
    for (const b of p) {
      const i = s * width + cls[b];
      if (next[i] === -1) {
        depth[states] = depth[s] + 1;
        hasChild[s] = 1;
        next[i] = states++;
      }
      s = next[i];
    }
    if (pi === dirIndex) directive[s] = 1;
    else maskLen[s] = Math.max(maskLen[s], p.length);
  });

  // Breadth-first: failure links, then complete the transition table so it is
  // a DFA, folding each state's failure chain outputs into the state.
  const fail = new Int32Array(states);
  const hold = new Int32Array(states);
  const queue = new Int32Array(states);
  let head = 0;
  let tail = 0;
  for (let c = 0; c < width; c++) {
    const v = next[c];
    if (v === -1) next[c] = 0;
    else {
      queue[tail++] = v;
      hold[v] = hasChild[v] ? 1 : 0;
    }
  }
  while (head < tail) {
    const u = queue[head++];
    const f = fail[u];
    if (maskLen[f] > maskLen[u]) maskLen[u] = maskLen[f];
    directive[u] |= directive[f];
    hold[u] = hasChild[u] ? depth[u] : hold[f];
    for (let c = 0; c < width; c++) {
      const i = u * width + c;
      const v = next[i];
      if (v === -1) next[i] = next[f * width + c];
      else {
        fail[v] = next[f * width + c];
        queue[tail++] = v;
      }
    }
  }

  const delta = new Int32Array(states * width);
  for (let i = 0; i < delta.length; i++) {
    const v = next[i];
    delta[i] = maskLen[v] !== 0 || directive[v] !== 0 ? ~(v * width) : v * width;
  }
  let maxDepth = 0;
  for (const p of all) if (p.length > maxDepth) maxDepth = p.length;
  return { maxDepth, delta, cls, width, hold, maskLen: maskLen.subarray(0, states), directive: directive.subarray(0, states) };
}

// One lane of the automaton over data[i..n) from state s; pushes (index,
// state) for each byte where something ends. Returns the final state.
export function runLane(delta: Int32Array, cls: Uint16Array, data: Uint8Array, i: number, n: number, s: number, ev: number[]): number {
  for (; i < n; i++) {
    const t = delta[s + cls[data[i]]];
    if (t >= 0) {
      s = t;
      continue;
    }
    s = ~t;
    ev.push(i, s);
  }
  return s;
}
