/** JSON over fetch for the shop's agent tests. */
export async function call(method: string, url: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  // `any`: tests read fields of whatever JSON came back and let the assertions judge it.
  return { status: res.status, body: text ? (JSON.parse(text) as any) : undefined, headers: res.headers };
}
