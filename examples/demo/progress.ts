/**
 * A progress bar on stderr without dependencies. On a terminal it redraws one line with a carriage return
 * (at most ten times a second); elsewhere (a pipe, a CI log) it prints a plain line at every quarter, so
 * logs stay readable and free of control characters.
 */

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export class ProgressBar {
  private readonly started = performance.now();
  private lastDraw = 0;
  private lastQuarter = -1;
  private finished = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly label: string,
    private readonly total: number,
    private readonly unit: string,
    /** Show the rate since the bar started (meaningless when the work began before it). */
    private readonly showRate = true,
  ) {}

  /** Reports `done` of `total`; `detail` is shown after the counts. */
  update(done: number, detail = ''): void {
    if (this.finished) return;
    const now = performance.now();
    if (this.stream.isTTY) {
      if (now - this.lastDraw < 100 && done < this.total) return;
      this.lastDraw = now;
      this.stream.write(`\r${this.line(done, detail, now)}`);
      return;
    }
    const quarter = this.total === 0 ? 4 : Math.floor((done / this.total) * 4);
    if (quarter > this.lastQuarter) {
      this.lastQuarter = quarter;
      this.stream.write(`${this.line(done, detail, now)}\n`);
    }
  }

  /** Draws the final state and ends the line. */
  finish(done: number, detail = ''): void {
    if (this.finished) return;
    if (this.stream.isTTY) {
      this.stream.write(`\r${this.line(done, detail, performance.now())}\n`);
    } else if (this.lastQuarter < 4) {
      this.stream.write(`${this.line(done, detail, performance.now())}\n`);
    }
    this.finished = true;
  }

  private line(done: number, detail: string, now: number): string {
    const fraction = this.total === 0 ? 1 : Math.min(1, done / this.total);
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const counts = `${String(done).padStart(String(this.total).length)}/${this.total} ${this.unit}`;
    const tail = `${String(Math.floor(fraction * 100)).padStart(3)}% ${counts}${this.showRate ? ` · ${rate.toFixed(0)}/s` : ''}${detail ? ` · ${detail}` : ''}`;
    const width = Math.max(10, Math.min(30, (this.stream.columns ?? 80) - this.label.length - tail.length - 6));
    const filled = Math.floor(fraction * width);
    const text = `${this.label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${tail}`;
    // A line longer than the terminal would wrap and break the carriage-return redraw.
    return this.stream.isTTY && this.stream.columns ? text.slice(0, this.stream.columns - 1).padEnd(this.stream.columns - 1) : text;
  }
}
