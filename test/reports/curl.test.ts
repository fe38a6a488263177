import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildCurl, shellQuote } from '../../reports/curl.js';

/** What a shell makes of `words`: the argv printf receives, NUL-separated. */
function argvOf(words: string, shell = 'bash'): string[] {
  const out = execFileSync(shell, ['-c', `printf '%s\\0' ${words}`], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

const NASTY = [
  `it's`,
  `"double" and 'single' quotes`,
  '$HOME $(touch /tmp/pwned) `id` ${PATH}',
  'line one\nline two\r\n\ttabbed',
  'back\\slash \\n not a newline',
  '\x1b[31mred\x1b[0m and a bell \x07',
  'C1 control \u0085 and unicode ✓ ünïcödé',
  '@/etc/passwd',
  '=zsh-equals',
  '*glob?[a]{b,c}~',
  '-not-an-option',
  '',
  `'`,
  `''\\''`,
];

describe('shellQuote', () => {
  it.each(NASTY.map((s) => [JSON.stringify(s), s]))('round-trips %s through bash unchanged', (_label, value) => {
    expect(argvOf(shellQuote(value))).toEqual([value]);
  });

  it('keeps the command on one line and free of raw control characters', () => {
    for (const value of NASTY) {
      expect(shellQuote(value)).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    }
  });

  it('uses plain single quotes (POSIX sh too) when there are no control characters', () => {
    for (const value of NASTY.filter((v) => !/[\u0000-\u001f\u007f-\u009f]/.test(v))) {
      expect(argvOf(shellQuote(value), 'sh')).toEqual([value]);
    }
  });
});

describe('buildCurl', () => {
  it('repeats a POST with headers and a nasty body exactly', () => {
    const body = `{"note":"it's $5 \`now\`\\nok","x":"@file"}\nsecond line`;
    const { command, note } = buildCurl(
      { method: 'post', target: "/stock/reserve?sku=A'1&q=[x]", headers: { 'content-type': 'application/json', 'x-request-id': 'r-1' }, body },
      'http://127.0.0.1:15000/',
    );
    expect(note).toBeNull();
    const argv = argvOf(command.replace(/^curl /, ''));
    expect(argv).toEqual([
      '-sS',
      '-g',
      '-X',
      'POST',
      "http://127.0.0.1:15000/stock/reserve?sku=A'1&q=[x]",
      '-H',
      'content-type: application/json',
      '-H',
      'x-request-id: r-1',
      '--data-raw',
      body,
    ]);
  });

  it('drops credentials, hop-by-hop headers and header names that are not tokens', () => {
    const { command } = buildCurl(
      {
        method: 'GET',
        target: '/a',
        headers: { Authorization: 'Bearer s3cret', Cookie: 'sid=1', Host: 'x', '@/etc/passwd': 'x', 'x-ok': 'smuggled\r\nX-Evil: 1' },
      },
      'http://h:1',
    );
    expect(command).not.toMatch(/s3cret|sid=1|passwd/);
    expect(argvOf(command.replace(/^curl /, ''))).toEqual(['-sS', '-g', 'http://h:1/a', '-H', 'x-ok: smuggled X-Evil: 1']);
  });

  it('cannot be pointed at another host by the target, and notes a truncated body', () => {
    const { command, note } = buildCurl({ method: 'PUT', target: '//evil.example/x', body: 'abc', bodyTruncated: true }, 'http://127.0.0.1:15000');
    expect(argvOf(command.replace(/^curl /, ''))).toContain('http://127.0.0.1:15000/evil.example/x');
    expect(note).toMatch(/truncated/);
  });

  it('uses -I for HEAD and refuses a method that is not one', () => {
    expect(buildCurl({ method: 'HEAD', target: '/h' }, 'http://a:1').command).toBe('curl -sS -g -I http://a:1/h');
    const bad = buildCurl({ method: 'GET; rm -rf /', target: '/h' }, 'http://a:1');
    expect(bad.command).toBe('curl -sS -g http://a:1/h');
    expect(bad.note).toMatch(/not a valid HTTP method/);
  });
});
