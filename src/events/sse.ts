/**
 * Server-Sent Events (the `text/event-stream` format of the HTML standard), as A2A streaming methods and MCP
 * streamable HTTP answer: the sidecar captures such streams, the comparator reads them, bus mode writes them.
 */

/** The content type of an SSE stream. */
export const SSE_CONTENT_TYPE = 'text/event-stream';

/** Whether a content type names an SSE stream. */
export function isEventStream(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.toLowerCase().startsWith(SSE_CONTENT_TYPE);
}

/** One dispatched event: its `data` lines joined with `\n`, its `event` type and `id` when the event gave them. */
export interface SseEvent {
  data: string;
  event?: string;
  id?: string;
}

/**
 * The events of a stream's text, in order. Comments and `retry` lines are dropped; an event is dispatched
 * by a blank line, so a trailing event without one (a stream cut mid-event) is not returned: `complete`
 * says whether the text ended on an event boundary.
 */
export function parseSse(text: string): { events: SseEvent[]; complete: boolean } {
  const events: SseEvent[] = [];
  let data: string[] | undefined;
  let event: string | undefined;
  let id: string | undefined;
  const lines = text.split(/\r\n|\r|\n/);
  // split leaves '' after a final line break; without one the last line is unterminated.
  const terminated = lines[lines.length - 1] === '';
  if (terminated) lines.pop();
  for (const line of lines) {
    if (line === '') {
      if (data) events.push({ data: data.join('\n'), ...(event !== undefined ? { event } : {}), ...(id !== undefined ? { id } : {}) });
      data = undefined;
      event = undefined;
      // Per event, unlike a browser's last-event-id: a relay rewrites each event with the fields it had.
      id = undefined;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') (data ??= []).push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\u0000')) id = value;
  }
  return { events, complete: terminated && data === undefined };
}

/** One event as stream text: `data:` lines (one per line of `data`), then the blank line that dispatches it. */
export function formatSse(data: string, options: { event?: string; id?: string } = {}): string {
  let out = '';
  if (options.event !== undefined) out += `event: ${options.event}\n`;
  if (options.id !== undefined) out += `id: ${options.id}\n`;
  for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  return `${out}\n`;
}
