/**
 * JSON pointers (RFC 6901) as the diff rules and parity records use them, plus `*` for one level.
 */

/** Splits `/body/items/*\/price` into unescaped segments (`['body', 'items', '*', 'price']`). */
export function parsePointer(pointer: string): string[] {
  if (pointer === '' || pointer === '/') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

export function escapeSegment(segment: string): string {
  return segment.indexOf('~') === -1 && segment.indexOf('/') === -1 ? segment : segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

export function formatPointer(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) out += '/' + (typeof s === 'number' ? String(s) : escapeSegment(s));
  return out;
}

/**
 * The shape of a concrete pointer with array indexes replaced by `*` (`/body/items/3/id` →
 * `/body/items/*\/id`), so that noise learned on one element applies to every element.
 */
export function generalizePointer(pointer: string): string {
  return pointer.replace(/\/\d+(?=\/|$)/g, '/*');
}

/** A rule tree: one node per pattern segment, `*` children match any one segment. */
export class RuleTrie<T> {
  readonly children = new Map<string, RuleTrie<T>>();
  value: T | undefined;

  insert(segments: readonly string[], value: T): void {
    let node: RuleTrie<T> = this;
    for (const s of segments) {
      let next = node.children.get(s);
      if (!next) {
        next = new RuleTrie<T>();
        node.children.set(s, next);
      }
      node = next;
    }
    node.value = value;
  }

  /** The nodes reached from `nodes` by one step along `segment` (exact and `*`). */
  static step<T>(nodes: readonly RuleTrie<T>[], segment: string): RuleTrie<T>[] {
    // Runs for every field the diff walks under a rule, so it allocates only when two or more nodes are
    // reached. The arrays it returns are shared: callers only read them.
    let first: RuleTrie<T> | undefined;
    let out: RuleTrie<T>[] | undefined;
    for (let i = 0; i < nodes.length; i++) {
      const children = nodes[i]!.children;
      if (children.size === 0) continue;
      const exact = children.get(segment);
      if (exact) {
        if (!first) first = exact;
        else (out ??= [first]).push(exact);
      }
      const any = segment !== '*' ? children.get('*') : undefined;
      if (any) {
        if (!first) first = any;
        else (out ??= [first]).push(any);
      }
    }
    if (out) return out;
    return first ? first.alone() : (EMPTY as RuleTrie<T>[]);
  }

  private single: RuleTrie<T>[] | undefined;

  /** This node as a step's only result (one frozen array per node). */
  private alone(): RuleTrie<T>[] {
    return (this.single ??= Object.freeze([this as RuleTrie<T>]) as RuleTrie<T>[]);
  }

  /** Whether `segments` (concrete) reach a node holding a value, or pass one on the way when `prefix`. */
  matches(segments: readonly string[], prefix = false): boolean {
    let nodes: RuleTrie<T>[] = [this];
    for (const s of segments) {
      if (prefix && nodes.some((n) => n.value !== undefined)) return true;
      nodes = RuleTrie.step(nodes, s);
      if (nodes.length === 0) return false;
    }
    return nodes.some((n) => n.value !== undefined);
  }
}

const EMPTY: readonly RuleTrie<unknown>[] = Object.freeze([]) as readonly RuleTrie<unknown>[];
