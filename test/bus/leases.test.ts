import { describe, expect, it } from 'vitest';
import { claimable, fairShare, planLeases, type Lease } from '../../src/bus/leases.js';

const TTL = 1_000;

/**
 * A group driven the way the adapters drive it: members plan one after another from the shared lease
 * table and apply their plan with compare-and-set (a claim succeeds only on a lease that is still
 * claimable), releases at once. Time moves only when the test says so.
 */
class Group {
  readonly leases = new Map<number, Lease>();
  readonly alive = new Set<string>();
  now = 0;

  constructor(readonly partitions: number[]) {}

  held(member: string): number[] {
    return this.partitions.filter((p) => {
      const l = this.leases.get(p);
      return l !== undefined && l.owner === member && l.expiresAt >= this.now;
    });
  }

  /** One planning round of `member`: renews its leases, plans, applies. */
  step(member: string): void {
    for (const p of this.held(member)) this.leases.set(p, { owner: member, expiresAt: this.now + TTL });
    const plan = planLeases({ member, members: this.alive.size, partitions: this.partitions, held: this.held(member), lease: (p) => this.leases.get(p), now: this.now });
    for (const p of plan.release) this.leases.delete(p);
    for (const p of plan.claim) {
      if (claimable(this.leases.get(p), member, this.now)) this.leases.set(p, { owner: member, expiresAt: this.now + TTL });
    }
  }

  /** Rounds over the live members until nothing changes (bounded). */
  settle(): number {
    for (let round = 1; round <= 20; round += 1) {
      const before = JSON.stringify([...this.leases.entries()].map(([p, l]) => [p, l.owner]));
      for (const m of this.alive) this.step(m);
      if (JSON.stringify([...this.leases.entries()].map(([p, l]) => [p, l.owner])) === before) return round;
    }
    throw new Error('did not settle in 20 rounds');
  }

  owners(): Map<string, number[]> {
    const out = new Map<string, number[]>([...this.alive].map((m) => [m, []]));
    for (const p of this.partitions) {
      const l = this.leases.get(p);
      if (l && l.expiresAt >= this.now) out.set(l.owner, [...(out.get(l.owner) ?? []), p]);
    }
    return out;
  }

  expectBalanced(): void {
    const { min, extra } = fairShare(this.partitions.length, this.alive.size);
    const owned = [...this.owners().entries()].filter(([m]) => this.alive.has(m));
    for (const [, parts] of owned) {
      expect(parts.length).toBeGreaterThanOrEqual(min);
      expect(parts.length).toBeLessThanOrEqual(min + 1);
    }
    expect(owned.filter(([, parts]) => parts.length > min)).toHaveLength(extra);
    // Every partition has exactly one live owner.
    expect(owned.flatMap(([, parts]) => parts).sort((a, b) => a - b)).toEqual(this.partitions);
  }
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('fairShare', () => {
  it('is the floor of partitions per member and the remainder, and never divides by zero', () => {
    expect(fairShare(8, 3)).toEqual({ min: 2, extra: 2 });
    expect(fairShare(8, 8)).toEqual({ min: 1, extra: 0 });
    expect(fairShare(3, 5)).toEqual({ min: 0, extra: 3 });
    expect(fairShare(8, 0)).toEqual({ min: 8, extra: 0 });
  });
});

describe('planLeases', () => {
  it('a lone member claims every free partition', () => {
    const plan = planLeases({ member: 'a', members: 1, partitions: range(8), held: [], lease: () => undefined, now: 0 });
    expect(plan.claim.sort((a, b) => a - b)).toEqual(range(8));
    expect(plan.release).toEqual([]);
    expect(plan.target).toBe(8);
  });

  it('never claims a partition another member holds a live lease on', () => {
    const leases = new Map<number, Lease>([
      [0, { owner: 'b', expiresAt: 100 }],
      [1, { owner: 'b', expiresAt: 100 }],
    ]);
    const plan = planLeases({ member: 'a', members: 2, partitions: range(4), held: [], lease: (p) => leases.get(p), now: 50 });
    expect(plan.claim.sort()).toEqual([2, 3]);
  });

  it('takes over a lease once it expired, and not a millisecond before', () => {
    const leases = new Map<number, Lease>([[0, { owner: 'dead', expiresAt: 100 }]]);
    const plan = (now: number) => planLeases({ member: 'a', members: 1, partitions: [0], held: [], lease: (p) => leases.get(p), now });
    expect(plan(100).claim).toEqual([]);
    expect(plan(101).claim).toEqual([0]);
  });

  it('may re-claim a lease it holds itself but did not know about (after a failed write)', () => {
    expect(claimable({ owner: 'a', expiresAt: 500 }, 'a', 0)).toBe(true);
    expect(claimable({ owner: 'b', expiresAt: 500 }, 'a', 0)).toBe(false);
    expect(claimable(undefined, 'a', 0)).toBe(true);
  });

  it('claims no more than its share, and nothing once it has it', () => {
    const partial = planLeases({ member: 'a', members: 3, partitions: range(8), held: [5], lease: () => undefined, now: 0 });
    expect(partial.claim).toHaveLength(2);
    expect(partial.claim).not.toContain(5);
    const full = planLeases({ member: 'a', members: 3, partitions: range(8), held: [1, 2, 3], lease: () => undefined, now: 0 });
    expect(full).toMatchObject({ claim: [], release: [] });
  });

  it('gives back the least busy partitions above its share, the latest ones on a tie', () => {
    const busy = new Map([[0, 5], [1, 0], [2, 3], [3, 0]]);
    const plan = planLeases({ member: 'a', members: 2, partitions: range(4), held: [0, 1, 2, 3], lease: () => undefined, load: (p) => busy.get(p)!, now: 0 });
    expect(plan.release).toEqual([3, 1]);
    expect(plan.claim).toEqual([]);
    const idle = planLeases({ member: 'a', members: 2, partitions: range(4), held: [0, 1, 2, 3], lease: () => undefined, now: 0 });
    expect(idle.release).toEqual([3, 2]);
  });

  it('above its floor, keeps the extra one only while fewer than partitions mod members others have one', () => {
    // 8 over 3: floor 2, and two members may own 3. a and b own 3 each: a keeps its extra, and c, at its
    // floor, takes none.
    const owners = new Map<number, string>([[3, 'b'], [4, 'b'], [5, 'b'], [6, 'c'], [7, 'c']]);
    const lease = (p: number): Lease | undefined => (owners.has(p) ? { owner: owners.get(p)!, expiresAt: 10 } : undefined);
    expect(planLeases({ member: 'a', members: 3, partitions: range(8), held: [0, 1, 2], lease, now: 0 })).toMatchObject({ target: 3, release: [] });
    owners.set(0, 'a').set(1, 'a').set(2, 'a').set(7, 'c').set(6, 'c');
    expect(planLeases({ member: 'c', members: 3, partitions: range(8), held: [6, 7], lease, now: 0 })).toMatchObject({ target: 2, claim: [] });
    // A member at its floor takes an extra one while fewer than `extra` others own one.
    owners.delete(5);
    expect(planLeases({ member: 'c', members: 3, partitions: range(8), held: [6, 7], lease, now: 0 })).toMatchObject({ target: 3, claim: [5] });
  });

  it('members start their search at different partitions', () => {
    const starts = new Set(['a', 'b', 'c', 'd', 'e', 'f'].map((m) => planLeases({ member: m, members: 8, partitions: range(8), held: [], lease: () => undefined, now: 0 }).claim[0]));
    expect(starts.size).toBeGreaterThan(1);
  });

  it('works on any partition identity (Redis uses stream names)', () => {
    const parts = ['t:0', 't:1', 'u:0'];
    const plan = planLeases({ member: 'a', members: 1, partitions: parts, held: ['u:0'], lease: () => undefined, now: 0 });
    expect(plan.claim.sort()).toEqual(['t:0', 't:1']);
  });

  it('has nothing to do with no partitions', () => {
    expect(planLeases({ member: 'a', members: 2, partitions: [], held: [], lease: () => undefined, now: 0 })).toMatchObject({ claim: [], release: [], target: 0 });
  });
});

describe('a group following the plan', () => {
  it.each([
    [8, 1],
    [8, 2],
    [8, 3],
    [7, 3],
    [8, 5],
    [8, 6],
    [5, 8],
    [1, 2],
    [256, 7],
  ])('%i partitions over %i members: balanced, each owned once', (partitions, members) => {
    const g = new Group(range(partitions));
    for (let i = 0; i < members; i += 1) g.alive.add(`m${i}`);
    g.settle();
    g.expectBalanced();
  });

  it('a joiner gets its share from the others, who keep the rest (sticky)', () => {
    const g = new Group(range(8));
    g.alive.add('a');
    g.alive.add('b');
    g.settle();
    const before = g.owners();
    g.alive.add('c');
    g.settle();
    g.expectBalanced();
    const after = g.owners();
    for (const m of ['a', 'b']) for (const p of after.get(m)!) expect(before.get(m)).toContain(p);
    // Only what c now owns moved.
    expect(after.get('c')!.length).toBe(8 - after.get('a')!.length - after.get('b')!.length);
  });

  it('a member that leaves cleanly hands everything to the others, who keep what they had', () => {
    const g = new Group(range(8));
    ['a', 'b', 'c'].forEach((m) => g.alive.add(m));
    g.settle();
    const before = g.owners();
    g.alive.delete('c');
    for (const p of g.held('c')) g.leases.delete(p);
    g.settle();
    g.expectBalanced();
    for (const m of ['a', 'b']) for (const p of before.get(m)!) expect(g.owners().get(m)).toContain(p);
  });

  it('a crashed member keeps its partitions until its leases expire, then they move', () => {
    const g = new Group(range(6));
    ['a', 'b'].forEach((m) => g.alive.add(m));
    g.settle();
    const lost = g.held('b');
    expect(lost.length).toBe(3);
    // b stops renewing; a sees one member but b's leases are live: nothing moves yet.
    g.alive.delete('b');
    g.now += TTL;
    g.settle();
    for (const p of lost) expect(g.leases.get(p)!.owner).toBe('b');
    g.now += 1;
    g.settle();
    g.expectBalanced();
    expect(g.held('a').sort()).toEqual(range(6));
  });

  it('members planning from the same read at once: compare-and-set leaves one owner per partition', () => {
    const g = new Group(range(8));
    ['a', 'b', 'c'].forEach((m) => g.alive.add(m));
    const snapshot = new Map(g.leases);
    const plans = [...g.alive].map((member) => ({ member, plan: planLeases({ member, members: 3, partitions: g.partitions, held: [], lease: (p) => snapshot.get(p), now: g.now }) }));
    const won = new Map<number, string[]>();
    for (const { member, plan } of plans) {
      for (const p of plan.claim) {
        if (!claimable(g.leases.get(p), member, g.now)) continue;
        g.leases.set(p, { owner: member, expiresAt: g.now + TTL });
        won.set(p, [...(won.get(p) ?? []), member]);
      }
    }
    for (const owners of won.values()) expect(owners).toHaveLength(1);
    g.settle();
    g.expectBalanced();
  });

  it('converges after any sequence of joins, clean leaves and crashes', () => {
    const g = new Group(range(8));
    const names = ['a', 'b', 'c', 'd', 'e'];
    let seed = 7;
    const random = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
    for (let step = 0; step < 400; step += 1) {
      const m = names[Math.floor(random() * names.length)]!;
      const r = random();
      if (r < 0.03) {
        g.alive.delete(m); // crash: its leases stay until they expire
      } else if (r < 0.06) {
        g.alive.delete(m);
        for (const p of g.held(m)) g.leases.delete(p);
      } else {
        g.alive.add(m);
        g.step(m);
        expect(g.held(m).length).toBeLessThanOrEqual(fairShare(8, g.alive.size).min + 1);
      }
      if (random() < 0.1) g.now += Math.floor(random() * TTL);
    }
    g.now += TTL + 1;
    g.settle();
    g.expectBalanced();
  });
});
