import { describe, expect, it } from 'vitest';
import { parseListen, sidecarBaseUrl } from '../src/net.js';

describe('listen addresses', () => {
  it('splits host and port, without the brackets of an IPv6 host', () => {
    expect(parseListen('127.0.0.1:15000')).toEqual({ host: '127.0.0.1', port: 15000 });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListen('[::1]:15000')).toEqual({ host: '::1', port: 15000 });
    expect(parseListen('[::]:15000')).toEqual({ host: '::', port: 15000 });
  });

  it('gives a reachable URL, brackets kept, wildcards as loopback', () => {
    expect(sidecarBaseUrl('[::1]:15000')).toBe('http://[::1]:15000');
    expect(sidecarBaseUrl('[::]:15000')).toBe('http://[::1]:15000');
    expect(sidecarBaseUrl('0.0.0.0:15000')).toBe('http://127.0.0.1:15000');
    expect(new URL(sidecarBaseUrl('[::]:15000')).port).toBe('15000');
  });
});
