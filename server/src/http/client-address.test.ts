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
  const signIn = (email: string, forwardedFor: string) =>
    t.gql<{ signInWithPassword: { __typename: string } }>(
      'mutation ($e: String!) { signInWithPassword(email: $e, password: "wrong password 1") { __typename } }',
      { e: email },
      { 'x-forwarded-for': forwardedFor },
    );

  it('records and limits by the forwarded address', async () => {
    const { body } = await signIn('nobody@example.com', '1.2.3.4, 203.0.113.7');
    expect(body.data).toEqual({ signInWithPassword: { __typename: 'InvalidCredentialsError' } });
    const entry = await t.app.deps.db.prisma.auditLog.findFirstOrThrow({
      where: { action: 'auth.sign_in_failed' },
      orderBy: { id: 'desc' },
    });
    expect(entry.ip).toBe('203.0.113.7');

    // The README's lockout per client address: 20 failures (each on another account, so the
    // per-account lockout stays out of it), then RATE_LIMITED for that address alone, although
    // every request comes from the same TCP peer.
    for (let i = 1; i < 20; i++) {
      const answer = await signIn(`spray-${i}@example.com`, `1.2.3.4, 203.0.113.7`);
      expect(answer.body.data).toEqual({ signInWithPassword: { __typename: 'InvalidCredentialsError' } });
    }
    const locked = await signIn('spray-20@example.com', 'spoofed, 203.0.113.7');
    expect(locked.status).toBe(429);
    expect(locked.body.data ?? null).toBeNull();
    expect(locked.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 60 });
    const elsewhere = await signIn('spray-20@example.com', '1.2.3.4, 203.0.113.8');
    expect(elsewhere.body.data).toEqual({ signInWithPassword: { __typename: 'InvalidCredentialsError' } });
  });
});
