import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../test/harness.js';
import { clientAddress } from './client-address.js';

const request = (peer: string, forwardedFor?: string | string[]) =>
  ({
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
  }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it('is the socket peer unless proxies are trusted, whatever X-Forwarded-For says', () => {
    expect(clientAddress(request('10.0.0.5', '203.0.113.7'), 0)).toBe('10.0.0.5');
    expect(clientAddress(request('::ffff:10.0.0.5'), 0)).toBe('10.0.0.5');
  });

  it('takes the entry the trusted proxies appended, never one the client wrote', () => {
    // The client claims 1.2.3.4; the load balancer appends what it saw.
    expect(clientAddress(request('10.0.0.5', '1.2.3.4, 203.0.113.7'), 1)).toBe('203.0.113.7');
    expect(clientAddress(request('10.0.0.5', ['1.2.3.4', '198.51.100.9, 10.0.0.4']), 2)).toBe('198.51.100.9');
    expect(clientAddress(request('10.0.0.5', '2001:db8::1'), 1)).toBe('2001:db8::1');
  });

  it('falls back sensibly on short or malformed chains', () => {
    expect(clientAddress(request('10.0.0.5'), 1)).toBe('10.0.0.5');
    expect(clientAddress(request('10.0.0.5', '203.0.113.7'), 3)).toBe('203.0.113.7');
    expect(clientAddress(request('10.0.0.5', 'not-an-ip'), 1)).toBe('10.0.0.5');
  });
});

describe('behind one trusted proxy', async () => {
  const t = await startTestApp({ TRUSTED_PROXIES: '1', CLINIC_POOL_SIZE: '0' });

  it('records and limits by the forwarded address', async () => {
    const SIGN_IN =
      'mutation { signInWithPassword(email: "nobody@example.com", password: "wrong") { __typename } }';
    const { body } = await t.gql(SIGN_IN, {}, { 'x-forwarded-for': '1.2.3.4, 203.0.113.7' });
    expect(body.data).toEqual({ signInWithPassword: { __typename: 'InvalidCredentialsError' } });
    const entry = await t.app.deps.db.prisma.auditLog.findFirstOrThrow({
      where: { action: 'auth.sign_in_failed' },
      orderBy: { id: 'desc' },
    });
    expect(entry.ip).toBe('203.0.113.7');
  });
});
