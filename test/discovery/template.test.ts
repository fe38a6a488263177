import { describe, expect, it } from 'vitest';
import { foldSiblings, inferTemplate, isValueSegment, matchTemplate } from '../../src/discovery/template.js';

describe('path templates', () => {
  it('folds numbers, UUIDs, hex digests and opaque tokens into parameters named after the segment before', () => {
    expect(inferTemplate('/orders/123')).toEqual({ template: '/orders/:orderId', params: { orderId: '123' } });
    expect(inferTemplate('/customers/550e8400-e29b-41d4-a716-446655440000/orders').template).toBe('/customers/:customerId/orders');
    expect(inferTemplate('/blobs/9f86d081884c7d65').template).toBe('/blobs/:blobId');
    expect(inferTemplate('/stock/SKU-42').template).toBe('/stock/:stockId');
    expect(inferTemplate('/categories/7/items/abcdefghijklmnopqrstu').template).toBe('/categories/:categoryId/items/:itemId');
  });

  it('keeps names of the API literal: words, versions, a trailing slash', () => {
    expect(inferTemplate('/api/v1/orders/').template).toBe('/api/v1/orders');
    expect(inferTemplate('/healthz').template).toBe('/healthz');
    for (const s of ['orders', 'v2', 'api2', 'stock-levels', '']) expect(isValueSegment(s)).toBe(false);
  });

  it('names two parameters without a word between them apart', () => {
    expect(inferTemplate('/1/2').template).toBe('/:id/:id2');
  });

  it('folds literal siblings once enough paths differ only at one segment', () => {
    const seen = ['/products/red-shoe', '/products/blue-hat'];
    expect(foldSiblings(seen, '/products/green-sock', 4)).toBeUndefined();
    expect(foldSiblings([...seen, '/products/pink-sock'], '/products/green-sock', 4)).toEqual({ template: '/products/:productId', folded: [...seen, '/products/pink-sock'] });
    // Paths that differ in two segments are different things, not one template.
    expect(foldSiblings(['/a/x', '/b/y', '/c/z'], '/d/w', 2)).toBeUndefined();
    expect(foldSiblings(['/shop/a/x', '/shop/b/x'], '/shop/c/x', 3)?.template).toBe('/shop/:shopId/x');
  });

  it('matches paths against templates', () => {
    expect(matchTemplate('/orders/:orderId', '/orders/9')).toEqual({ orderId: '9' });
    expect(matchTemplate('/orders/:orderId', '/orders/9/cancel')).toBeUndefined();
    expect(matchTemplate('/orders/:orderId', '/orders/')).toBeUndefined();
  });
});
