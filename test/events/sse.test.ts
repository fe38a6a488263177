import { describe, expect, it } from 'vitest';
import { formatSse, isEventStream, parseSse } from '../../src/events/sse.js';

describe('Server-Sent Events', () => {
  it('parses events: multi-line data joined, comments and retry dropped, any line ending', () => {
    const text = ': keep-alive\nretry: 100\nevent: update\nid: 1\ndata: {"a":\ndata: 1}\n\r\ndata:plain\r\rdata: last\n\n';
    expect(parseSse(text)).toEqual({
      events: [{ event: 'update', id: '1', data: '{"a":\n1}' }, { data: 'plain' }, { data: 'last' }],
      complete: true,
    });
  });

  it('does not dispatch an event cut off before its blank line, and says the text ended mid-event', () => {
    expect(parseSse('data: one\n\ndata: tw')).toEqual({ events: [{ data: 'one' }], complete: false });
    expect(parseSse('data: one\n\ndata: two\n')).toEqual({ events: [{ data: 'one' }], complete: false });
  });

  it('formats what it parses back', () => {
    const text = formatSse('{"x":1}\nsecond', { event: 'e', id: '7' });
    expect(text).toBe('event: e\nid: 7\ndata: {"x":1}\ndata: second\n\n');
    expect(parseSse(text).events).toEqual([{ event: 'e', id: '7', data: '{"x":1}\nsecond' }]);
  });

  it('recognizes the content type with parameters, in any case', () => {
    expect(isEventStream('text/event-stream; charset=utf-8')).toBe(true);
    expect(isEventStream('Text/Event-Stream')).toBe(true);
    expect(isEventStream('application/json')).toBe(false);
    expect(isEventStream(undefined)).toBe(false);
  });
});
