// A run's log in the page: lines split as text arrives, with the colour state
// each line starts in. Holding strings (not DOM nodes) keeps 100,000 lines to
// a few megabytes; the view renders only the lines on screen.
import { PLAIN, endState, type Sgr } from './ansi.ts';

export interface PhaseMark { index: number; name: string }

export class LogLines {
  lines: string[] = [];
  starts: Sgr[] = [];
  /** Line index → the phase heading that line is (an empty line in `lines`). */
  marks = new Map<number, PhaseMark>();
  private partial = '';
  private state: Sgr = PLAIN;
  private phase = -1;
  /** Bumped on every change, so a view knows when to paint. */
  version = 0;

  get length(): number { return this.lines.length + (this.partial ? 1 : 0); }

  line(i: number): string { return i < this.lines.length ? this.lines[i]! : this.partial; }
  start(i: number): Sgr { return i < this.starts.length ? this.starts[i]! : this.state; }

  /** Appends log text of `phase` (a heading goes in before a phase's first line). */
  append(phase: number, name: string, text: string): void {
    if (phase !== this.phase) {
      this.flush();
      this.phase = phase;
      this.state = PLAIN;
      this.marks.set(this.lines.length, { index: phase, name });
      this.lines.push('');
      this.starts.push(PLAIN);
    }
    let from = 0;
    for (;;) {
      const nl = text.indexOf('\n', from);
      if (nl < 0) break;
      this.push(this.partial + text.slice(from, nl));
      this.partial = '';
      from = nl + 1;
    }
    this.partial += text.slice(from);
    this.version++;
  }

  private push(line: string): void {
    this.lines.push(line);
    this.starts.push(this.state);
    this.state = endState(line, this.state);
  }

  /** A line without its newline yet becomes a whole line (the phase ended). */
  flush(): void {
    if (this.partial) {
      this.push(this.partial);
      this.partial = '';
      this.version++;
    }
  }
}
