/**
 * Access tokens are verified once per instance, then recognised (docs/decisions/059): the
 * signature check is not repeated on every request, but expiry is, and a token that differs
 * by one character is verified on its own.
 */
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';

describe('access token verification', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { auth } = t.app.deps;
  const user = await t.app.deps.db.prisma.user.create({
    data: { email: `tokens-${Date.now()}@example.com`, firstName: 'T', lastName: 'V', role: 'STAFF' },
  });
  const secret = new TextEncoder().encode(t.app.deps.config.jwtSecret);

  it('verifies a token once, then recognises it', async () => {
    const { accessToken } = await auth.startSession(user.id, { ip: null }, 'test');
    const before = auth.verifiedTokens.stats.verified;
    for (let i = 0; i < 3; i++)
      expect((await auth.authenticate(`Bearer ${accessToken}`))?.userId).toBe(user.id);
    expect(auth.verifiedTokens.stats.verified - before).toBe(1);
  });

  it('still refuses a tampered copy of a token it has verified', async () => {
    const { accessToken } = await auth.startSession(user.id, { ip: null }, 'test');
    await auth.authenticate(`Bearer ${accessToken}`);
    const [header, payload, signature = ''] = accessToken.split('.');
    // A character inside the signature (the last one also carries padding bits).
    const flipped = signature[10] === 'A' ? 'B' : 'A';
    const forgedSignature = `${header}.${payload}.${signature.slice(0, 10)}${flipped}${signature.slice(11)}`;
    await expect(auth.authenticate(`Bearer ${forgedSignature}`)).rejects.toThrow(/session has ended/);
    const claims = decodeJwt(accessToken);
    const forgedClaims = Buffer.from(JSON.stringify({ ...claims, role: 'SUPER_ADMIN' })).toString(
      'base64url',
    );
    await expect(auth.authenticate(`Bearer ${header}.${forgedClaims}.${signature}`)).rejects.toThrow(
      /session has ended/,
    );
  });

  it('refuses a token it has verified once it has expired', async () => {
    const { accessToken } = await auth.startSession(user.id, { ip: null }, 'test');
    const claims = decodeJwt(accessToken);
    // Two whole seconds ahead: `floor(now) + 1` can be a few milliseconds away on a busy machine.
    const exp = Math.floor(Date.now() / 1000) + 2;
    const shortLived = await new SignJWT({ role: claims.role, cid: claims.cid, sid: claims.sid })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setIssuer('onramp')
      .setAudience('onramp')
      .setIssuedAt()
      .setExpirationTime(exp)
      .sign(secret);
    expect((await auth.authenticate(`Bearer ${shortLived}`))?.userId).toBe(user.id);
    await new Promise((done) => setTimeout(done, exp * 1000 + 100 - Date.now()));
    await expect(auth.authenticate(`Bearer ${shortLived}`)).rejects.toThrow(/session has ended/);
  });

  it('signs access tokens as HS256 JWTs that jose verifies, with the session in their claims', async () => {
    const { accessToken, expiresAt } = await auth.startSession(user.id, { ip: null }, 'test');
    expect(decodeProtectedHeader(accessToken)).toEqual({ alg: 'HS256' });
    const { payload } = await jwtVerify(accessToken, secret, {
      issuer: 'onramp',
      audience: 'onramp',
      algorithms: ['HS256'],
    });
    const session = await t.app.deps.db.prisma.session.findFirstOrThrow({
      where: { userId: user.id },
      orderBy: { createdAt: 'desc' },
    });
    expect(payload).toMatchObject({ sub: user.id, sid: session.id, role: 'STAFF', cid: null });
    expect(payload.exp).toBe(Math.floor(expiresAt.getTime() / 1000));
    expect(Math.abs((payload.iat ?? 0) - Date.now() / 1000)).toBeLessThan(5);
    await expect(
      jwtVerify(accessToken, new TextEncoder().encode('another secret of the same length, or not'), {
        algorithms: ['HS256'],
      }),
    ).rejects.toThrow();
  });
});
