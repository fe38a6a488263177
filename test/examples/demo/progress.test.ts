import { describe, expect, it } from 'vitest';
import { ProgressBar } from '../../../examples/demo/progress.js';

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, isTTY, columns: 80, write: (t: string) => void writes.push(t) };
}

describe('progress bar', () => {
  it('off a terminal prints a plain line at every quarter, without control characters', () => {
    const s = stream(false);
    const bar = new ProgressBar(s, 'traffic', 8, 'requests');
    for (let i = 1; i <= 8; i++) bar.update(i);
    bar.finish(8);
    expect(s.writes.map((w) => w.replace(/ · \d+\/s/, ''))).toEqual([
      expect.stringMatching(/^traffic \[#{3}-+\]  12% 1\/8 requests\n$/),
      expect.stringMatching(/^traffic \[#+-+\]  25% 2\/8 requests\n$/),
      expect.stringMatching(/^traffic \[#+-+\]  50% 4\/8 requests\n$/),
      expect.stringMatching(/^traffic \[#+-+\]  75% 6\/8 requests\n$/),
      expect.stringMatching(/^traffic \[#+\] 100% 8\/8 requests\n$/),
    ]);
    expect(s.writes.join('')).not.toMatch(/[\r\x1b]/);
  });

  it('on a terminal redraws one line with a carriage return, fitted to the width, and ends it', () => {
    const s = stream(true);
    const bar = new ProgressBar(s, 'pairing', 100, 'calls', false);
    bar.update(1);
    bar.finish(100);
    expect(s.writes[0]).toMatch(/^\rpairing \[-+\] +1% +1\/100 calls *$/);
    expect(s.writes.at(-1)).toMatch(/^\rpairing \[#+\] 100% 100\/100 calls *\n$/);
    for (const w of s.writes) expect(w.replace(/\n$/, '').length).toBe(80);
  });
});
