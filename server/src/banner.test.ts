/** The origin the start banner prints: the one mail links use, when it reaches the listener. */
import { describe, expect, it } from 'vitest';
import { browserUrl } from './banner.js';

describe('browserUrl', () => {
  it("prints PUBLIC_URL's loopback origin for a loopback or wildcard listener on its port", () => {
    expect(browserUrl('http://127.0.0.1:4000', 'http://localhost:4000')).toBe('http://localhost:4000');
    expect(browserUrl('http://0.0.0.0:4000', 'http://localhost:4000')).toBe('http://localhost:4000');
    expect(browserUrl('http://[::1]:4000', 'http://127.0.0.1:4000')).toBe('http://127.0.0.1:4000');
  });

  it("keeps the listener's own origin when PUBLIC_URL names another port, host or scheme", () => {
    expect(browserUrl('http://127.0.0.1:41234', 'http://localhost:0')).toBe('http://127.0.0.1:41234');
    expect(browserUrl('http://127.0.0.1:4000', 'https://clinics.example.com')).toBe('http://127.0.0.1:4000');
    expect(browserUrl('http://127.0.0.1:4000', 'https://localhost:4000')).toBe('http://127.0.0.1:4000');
    expect(browserUrl('http://[::]:4000')).toBe('http://localhost:4000');
    expect(browserUrl('http://192.168.1.10:4000', 'http://localhost:4000')).toBe('http://192.168.1.10:4000');
  });
});
