import { describe, expect, it } from 'vitest';
import { addToShape, mergeShapes, schemaMismatch, shapeToSchema, type ShapeNode } from '../../src/discovery/shape.js';

function shapeOf(values: unknown[]): ShapeNode {
  let node: ShapeNode | undefined;
  for (const v of values) node = addToShape(node, v);
  return node!;
}

describe('payload shapes', () => {
  const orders = Array.from({ length: 25 }, (_, i) => ({ id: i, status: i % 2 ? 'open' : 'paid', total: i + 0.5, note: i % 5 === 0 ? 'gift' : undefined, items: [{ sku: `S-${i}`, qty: 1 }] }))
    .map((o) => JSON.parse(JSON.stringify(o)) as unknown);

  it('infers a JSON Schema: types, required members, enums where the evidence supports them', () => {
    const schema = shapeToSchema(shapeOf(orders));
    expect(schema).toEqual({
      type: 'object',
      properties: {
        id: { type: 'integer' },
        status: { type: 'string', enum: ['paid', 'open'] },
        total: { type: 'number' },
        note: { type: 'string' },
        items: { type: 'array', items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer' } }, required: ['sku', 'qty'] } },
      },
      required: ['id', 'status', 'total', 'items'],
    });
  });

  it('declares no enum on little evidence or many values', () => {
    expect(shapeToSchema(shapeOf(['a', 'b', 'a'])).enum).toBeUndefined();
    expect(shapeToSchema(shapeOf(Array.from({ length: 40 }, (_, i) => `v${i % 20}`))).enum).toBeUndefined();
  });

  it('finds where a value stops fitting: a missing member, a new type, a value outside the enum; extra members fit', () => {
    const schema = shapeToSchema(shapeOf(orders));
    expect(schemaMismatch(schema, orders[3])).toBeUndefined();
    expect(schemaMismatch(schema, { ...(orders[3] as object), extra: true })).toBeUndefined();
    expect(schemaMismatch(schema, { id: 1, status: 'open', items: [] })).toBe('/total: missing');
    expect(schemaMismatch(schema, { id: '1', status: 'open', total: 1, items: [] })).toBe('/id: expected integer, got string');
    expect(schemaMismatch(schema, { id: 1, status: 'lost', total: 1, items: [] })).toBe('/status: "lost" is not one of "paid", "open"');
    expect(schemaMismatch(schema, { id: 1, status: 'open', total: 1, items: [{ sku: 5, qty: 1 }] })).toBe('/items/0/sku: expected string, got integer');
  });

  it('stays bounded: values per field and members per object are capped', () => {
    const node = shapeOf(Array.from({ length: 500 }, (_, i) => ({ [`k${i}`]: `value-${i}`, id: `id-${i}` })));
    expect(Object.keys(node.props!).length).toBe(64);
    expect(node.props!.id!.values!.length).toBe(64);
    expect(node.props!.id!.more).toBe(true);
  });

  it('merges shapes as if all values had been added to one', () => {
    const a = shapeOf(orders.slice(0, 10));
    const b = shapeOf(orders.slice(10));
    expect(shapeToSchema(mergeShapes(a, b))).toEqual(shapeToSchema(shapeOf(orders)));
    expect(mergeShapes(a, b)!.n).toBe(25);
  });
});
