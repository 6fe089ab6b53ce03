/**
 * Sessions: short-lived JWT access tokens (15 min) and opaque refresh tokens stored as sha256,
 * rotated on every use; presenting a spent token revokes its whole family. Password sign-in
 * with argon2id, the same cost for unknown e-mails, growing lockouts, and the clinic health
 * check at sign-in (README, "Architecture"): a broken clinic database is repaired (within 5 s) before anyone enters it.
 */
import {
  createHash,
  createHmac,
  createSecretKey,
  type KeyObject,
  randomBytes,
  randomUUID,
} from 'node:crypto';
import { GraphQLError } from 'graphql';
import { type JWTPayload, jwtVerify } from 'jose';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { RateLimitedError, unauthenticated } from '../../errors.js';
import { Prisma } from '../../generated/central/client.js';
import type { UserRole } from '../../generated/central/enums.js';
import { isUuid } from '../../ids.js';
import type { Logger } from '../../logger.js';
import { auditActionSql, recordAudit } from '../audit/record.js';
import { ConsentWithdrawnError } from '../consents/errors.js';
import type { ConsentRequired } from '../consents/schema.js';
import {
  type Acceptance,
  type ConsentState,
  consentState,
  consentStateOf,
  recordAcceptances,
} from '../consents/service.js';
import type { MailTransport } from '../mail/service.js';
import type { ProvisioningService } from '../provisioning/index.js';
import { InvalidCodeError } from '../users/errors.js';
import { normaliseEmail } from '../users/validation.js';
import {
  ClinicUnavailableError,
  EmailNotVerifiedError,
  InvalidCredentialsError,
  InvalidRefreshTokenError,
} from './errors.js';
import { type LimitStore, Lockout } from './lockout.js';
import { LoginCodes } from './login-codes.js';
import { claimHashSlot, DEFAULT_HASH_SLOTS_PER_ADDRESS, type HashClaim, hashPassword } from './passwords.js';
import type { LiveSession, SessionCache } from './session-cache.js';
import { endFamily } from './session-ends.js';
import { TwoFactor } from './two-factor.js';
import { VerifiedTokens } from './verified-tokens.js';
import type { Viewer } from './viewer.js';

export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
const REFRESH_TOKEN_TTL_MS = 30 * 24 * 60 * 60_000;
/** A client that lost the response to a refresh may present the spent token again this long. */
export const REFRESH_GRACE_MS = 10_000;
/** How long sign-in waits for a repair of a broken clinic database. */
const LOGIN_REPAIR_BUDGET_MS = 5_000;

export interface IssuedSession {
  accessToken: string;
  refreshToken: string;
  expiresAt: Date;
  userId: string;
}

export interface TwoFactorChallenge {
  challengeToken: string;
}

export interface RequestMeta {
  ip: string | null;
  userAgent?: string | null;
}

export interface AuthDeps {
  /** Where lockouts and send limits are counted (shared by every instance). */
  limits: LimitStore;
  /**
   * Tells every instance that sessions of this user ended (the event bus): their cached session
   * checks are dropped and their live subscriptions end at once (session-cache.ts,
   * session-watch.ts).
   */
  sessionsEnded: (userId: string) => Promise<void>;
  /** Where requests look their session up (session-cache.ts). */
  sessionCache: SessionCache;
  /** Sign-in codes are sent through it as soon as they are stored (see login-codes.ts). */
  mail: MailTransport;
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
  provisioning: ProvisioningService;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/**
 * The answer's message when every session of the user ended between the check of the sign-in's
 * credentials and the write of its session (docs/decisions/089, session-ends.ts).
 */
const ENDED_MEANWHILE =
  'Your sessions were ended while you signed in (a security setting changed); sign in again';

/** How {@link AuthService.issue} writes a session. */
interface SessionIssue {
  familyId: string;
  /** The user's `session_epoch`, read with the credentials the sign-in checked (session-ends.ts). */
  epoch: number;
  meta: RequestMeta;
  /** How the user signed in (audited); null for a refresh. */
  method: string | null;
  /** The answer when every session of the user ended since `epoch` was read. */
  stale: () => Error;
  /** A derived child (see refresh), or a fresh token. */
  refreshToken?: string;
  /** The session a refresh rotates: the child is written only while it is live (endFamily). */
  parentId?: string;
}

/** What a new session is written with (see {@link sessionWrites}). */
interface SessionDraft {
  familyId: string;
  refreshToken: string;
  meta: RequestMeta;
  /** How the user signed in; with one, the sign-in is audited (`auth.sign_in`), without (a refresh) not. */
  method: string | null;
}

/**
 * CTEs that write a session (its refresh token as sha256) for each user `who` selects (columns
 * `id`, `clinic_id`), and with a `method` its `auth.sign_in` audit entry: one round trip, atomic,
 * inside whatever statement needs it (a sign-in, or the spending of an e-mail code). `who` is
 * evaluated once (`signer`, so its row locks are taken once). `session` returns the new
 * session's `id`; none when a session with this refresh token exists already (a derived child,
 * see refresh).
 */
function sessionWrites(who: Prisma.Sql, { familyId, refreshToken, meta, method }: SessionDraft): Prisma.Sql {
  return Prisma.sql`signer AS (${who}),
      session AS (
        INSERT INTO sessions (user_id, family_id, refresh_token_hash, expires_at, ip, user_agent)
        SELECT w.id, ${familyId}::uuid, ${sha256(refreshToken)},
               ${new Date(Date.now() + REFRESH_TOKEN_TTL_MS)}::timestamptz, ${meta.ip}::text,
               ${meta.userAgent?.slice(0, 300) ?? null}::text
          FROM signer w
        ON CONFLICT (refresh_token_hash) DO NOTHING
        RETURNING id, user_id),
      session_audited AS (
        INSERT INTO audit_log (action, actor_id, clinic_id, ip, data)
        SELECT ${auditActionSql('auth.sign_in')}, w.id, w.clinic_id, ${meta.ip}::text,
               jsonb_build_object('method', ${method}::text)
          FROM session JOIN signer w ON w.id = session.user_id
         WHERE ${method}::text IS NOT NULL)`;
}

const HS256_HEADER = Buffer.from(JSON.stringify({ alg: 'HS256' })).toString('base64url');

/**
 * The compact HS256 JWT of `claims` (what jose's `SignJWT` makes with the header `{ alg: 'HS256' }`),
 * signed by node:crypto's HMAC in this thread: a tenth of the CPU of jose's WebCrypto sign, which
 * is asynchronous and imports the key on every call (bench/README.md, `otp`). Tokens are verified
 * by jose (`jwtVerify`, HS256 only), as before.
 */
function signHs256(claims: JWTPayload, key: KeyObject): string {
  const input = `${HS256_HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

/** Members invited by SMS have no e-mail: they sign in with the phone they activated. */
export type PasswordLogin = { email: string } | { phone: string };

export class AuthService {
  private readonly secret: Uint8Array;
  /** JWT_SECRET as a key object, for {@link signHs256}. */
  private readonly signingKey: KeyObject;
  private readonly accounts: Lockout;
  private readonly addresses: Lockout;
  /** Verified against when the e-mail is unknown, so both cases cost one argon2 verify. */
  private dummyHash: Promise<string> | undefined;
  private readonly hashSlotsPerAddress: number;

  readonly codes: LoginCodes;
  /** Access tokens verified by this instance: a signature is checked once, expiry every time. */
  readonly verifiedTokens: VerifiedTokens;
  readonly twoFactor: TwoFactor;

  /** Derives a spent refresh token's child (see refresh). */
  private readonly refreshKey: Buffer;

  constructor(private readonly deps: AuthDeps) {
    this.secret = new TextEncoder().encode(deps.config.jwtSecret);
    this.signingKey = createSecretKey(this.secret);
    this.verifiedTokens = new VerifiedTokens(
      async (token) =>
        (await jwtVerify(token, this.secret, { issuer: 'onramp', audience: 'onramp', algorithms: ['HS256'] }))
          .payload,
    );
    this.refreshKey = createHmac('sha256', deps.config.jwtSecret).update('onramp refresh tokens').digest();
    this.hashSlotsPerAddress = deps.config.hashSlotsPerAddress ?? DEFAULT_HASH_SLOTS_PER_ADDRESS;
    this.accounts = new Lockout(deps.limits, 'sign_in.account', { threshold: 5, baseSeconds: 60 });
    this.addresses = new Lockout(deps.limits, 'sign_in.address', { threshold: 20, baseSeconds: 60 });
    this.codes = new LoginCodes(deps);
    this.twoFactor = new TwoFactor(deps);
  }

  /** The cache of request session checks (its `stats` tell hits from database reads). */
  get sessionCache(): SessionCache {
    return this.deps.sessionCache;
  }

  /** The platform super-admin of ONRAMP_ADMIN_EMAIL exists (no password: signs in by e-mail code). */
  async bootstrapSuperAdmin(): Promise<void> {
    const { prisma, config } = this.deps;
    await prisma.user.upsert({
      where: { email: config.adminEmail },
      create: {
        email: config.adminEmail,
        firstName: 'Platform',
        lastName: 'Admin',
        role: 'SUPER_ADMIN',
        emailVerifiedAt: new Date(),
      },
      update: { role: 'SUPER_ADMIN' },
    });
  }

  /**
   * @throws InvalidCredentialsError, EmailNotVerifiedError, ClinicUnavailableError, or a
   * RateLimitedError while the account or address is locked out.
   */
  async signInWithPassword(
    login: PasswordLogin,
    password: string,
    meta: RequestMeta,
    acceptances: Acceptance[] | null = null,
  ): Promise<IssuedSession | TwoFactorChallenge | ConsentRequired> {
    const where = 'phone' in login ? { phone: login.phone } : { email: normaliseEmail(login.email) };
    const accountKey = 'phone' in where ? `account:phone:${where.phone}` : `account:${where.email}`;
    const addressKey = `ip:${meta.ip ?? 'unknown'}`;
    // First the address's share of the hashing slots (passwords.ts): its excess is refused
    // before anything is counted or queued.
    const slot = claimHashSlot(addressKey, this.hashSlotsPerAddress);
    if (!slot) throw new RateLimitedError(1);
    try {
      return await this.checkPassword(where, accountKey, addressKey, password, meta, slot, acceptances);
    } finally {
      slot.release();
    }
  }

  /** The rest of signInWithPassword, within the address's claim on the hashing slots. */
  private async checkPassword(
    where: { phone: string } | { email: string },
    accountKey: string,
    addressKey: string,
    password: string,
    meta: RequestMeta,
    slot: HashClaim,
    acceptances: Acceptance[] | null,
  ): Promise<IssuedSession | TwoFactorChallenge | ConsentRequired> {
    const { prisma } = this.deps;
    // Reserved before anything is evaluated (lockout.ts): of N concurrent attempts at most the
    // limit get past here. The address first: an attempt on a locked account still spends the
    // address's budget, so a locked account is no free target for guessing elsewhere.
    const addressWait = await this.addresses.reserve(addressKey);
    if (addressWait > 0) throw new RateLimitedError(addressWait);
    const accountWait = await this.accounts.reserve(accountKey);
    if (accountWait > 0) throw new RateLimitedError(accountWait);

    const user = await prisma.user.findUnique({ where, include: { clinic: true } });
    // Unknown e-mail or no password: verify against a dummy hash anyway, so the answer takes
    // as long as for a known account and reveals nothing.
    this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'));
    const ok = await slot.verify(user?.passwordHash ?? (await this.dummyHash), password);
    if (!user?.passwordHash || !ok) {
      // Already counted by the reservations above.
      await recordAudit(prisma, {
        action: 'auth.sign_in_failed',
        actorId: user?.id ?? null,
        clinicId: user?.clinicId ?? null,
        ip: meta.ip,
        data: { method: 'password' },
      });
      throw new InvalidCredentialsError();
    }
    // A right password clears the account's count and gives the address its attempt back (a
    // whole clinic may sign in from one address).
    await Promise.all([this.accounts.succeed(accountKey), this.addresses.refund(addressKey)]);
    // A member invited by SMS proved their phone by activating (which set this password).
    if (!('phone' in where) && !user.emailVerifiedAt) throw new EmailNotVerifiedError();
    if (user.clinic) await this.ensureClinicUsable(user.clinic.id, user.clinic.status);
    // Only after the password: what a user accepted is theirs to learn, nobody else's.
    const pending = await this.consentsPending(user, acceptances, meta);
    if (pending) return pending;
    if (user.totpEnabledAt) {
      // The password was right; the session waits for the second factor.
      const challengeToken = signHs256(
        {
          purpose: '2fa',
          sub: user.id,
          // The session is written only at this epoch: a change that ends every session of the
          // user voids the challenge too (docs/decisions/089).
          ep: user.sessionEpoch,
          iss: 'onramp',
          aud: 'onramp-2fa',
          jti: randomUUID(),
          exp: Math.floor(Date.now() / 1000) + 5 * 60,
        },
        this.signingKey,
      );
      return { challengeToken };
    }
    return this.issue(user, {
      familyId: randomUUID(),
      epoch: user.sessionEpoch,
      meta,
      method: 'password',
      stale: () => new InvalidCredentialsError(ENDED_MEANWHILE),
    });
  }

  /**
   * What a password sign-in asks of the user's consents (docs/decisions/053): acceptances given
   * with it are recorded first; then {@link consentsAsked}.
   * @throws ConsentWithdrawnError
   */
  private async consentsPending(
    user: { id: string; role: UserRole },
    acceptances: Acceptance[] | null,
    meta: RequestMeta,
  ): Promise<ConsentRequired | null> {
    if (acceptances) {
      await this.deps.prisma.$transaction((tx) => this.recordAccepted(tx, user.id, acceptances, meta));
    }
    return this.consentsAsked(user);
  }

  /**
   * What signing in must ask first: a withdrawn privacy notice refuses it, an outdated (or
   * withdrawn) document asks for acceptance; a client is asked for what they never accepted.
   * @throws ConsentWithdrawnError
   */
  private async consentsAsked(user: { id: string; role: UserRole }): Promise<ConsentRequired | null> {
    const { prisma, config } = this.deps;
    return this.consentsAskedOf(
      await consentState(prisma, config, user.id, { askMissing: user.role === 'CLIENT' }),
    );
  }

  /** {@link consentsAsked} of a state already read. @throws ConsentWithdrawnError */
  private consentsAskedOf(state: ConsentState): ConsentRequired | null {
    const { config } = this.deps;
    if (state.withdrawn.includes('PRIVACY')) throw new ConsentWithdrawnError();
    const required = [
      ...state.outdated,
      ...state.withdrawn.map((document) => ({ document, version: config.consentVersions[document] })),
    ];
    return required.length > 0 ? { consentRequired: required } : null;
  }

  /** Records acceptances given with a sign-in, audited, in the caller's transaction. */
  private async recordAccepted(
    tx: Prisma.TransactionClient,
    userId: string,
    acceptances: readonly Acceptance[],
    meta: RequestMeta,
  ): Promise<void> {
    await recordAcceptances(tx, userId, acceptances, meta.ip);
    await recordAudit(tx, {
      action: 'consent.accepted',
      actorId: userId,
      ip: meta.ip,
      targetType: 'user',
      targetId: userId,
      data: { documents: acceptances.map(({ document, version }) => `${document} ${version}`) },
    });
  }

  /**
   * Completes a password sign-in with a TOTP or recovery code. Five attempts lock the second
   * factor like five wrong passwords lock the first (two-factor.ts).
   * @throws InvalidCodeError, TooManyAttemptsError, ConsentWithdrawnError
   */
  async verifyTwoFactor(challengeToken: string, code: string, meta: RequestMeta): Promise<IssuedSession> {
    let userId: string;
    let epoch: number;
    try {
      const { payload } = await jwtVerify(challengeToken, this.secret, {
        issuer: 'onramp',
        audience: 'onramp-2fa',
        algorithms: ['HS256'],
      });
      if (payload.purpose !== '2fa' || typeof payload.sub !== 'string' || typeof payload.ep !== 'number')
        throw new Error('not a challenge');
      userId = payload.sub;
      epoch = payload.ep;
    } catch {
      throw new InvalidCodeError('This sign-in attempt has expired; sign in again');
    }
    const user = await this.deps.prisma.user.findUniqueOrThrow({
      where: { id: userId },
      select: {
        id: true,
        role: true,
        clinicId: true,
        sessionEpoch: true,
        clinic: { select: { status: true } },
      },
    });
    // The password was checked up to 5 minutes ago: the clinic may have been deleted since.
    if (user.clinicId) await this.ensureClinicUsable(user.clinicId, user.clinic?.status ?? 'DELETED');
    // Before the code is spent (docs/decisions/056): a privacy notice withdrawn since the
    // password was checked refuses the sign-in and leaves the code (a recovery code is single
    // use) for the sign-in that accepts it again.
    const { withdrawn } = await consentState(this.deps.prisma, this.deps.config, user.id);
    if (withdrawn.includes('PRIVACY')) throw new ConsentWithdrawnError();
    // Every session of the user ended since the password was checked (a factor change, say):
    // refused before the code is spent, after the answers that say more. The session's write
    // checks it again (issue).
    if (user.sessionEpoch !== epoch) throw new InvalidCodeError(ENDED_MEANWHILE);
    await this.twoFactor.check(userId, code);
    return this.issue(user, {
      familyId: randomUUID(),
      epoch,
      meta,
      method: 'password+2fa',
      stale: () => new InvalidCodeError(ENDED_MEANWHILE),
    });
  }

  /**
   * Signs in with an e-mail code (see login-codes.ts for its rules). Consents are asked once
   * the code matched and before it is spent (docs/decisions/056): a ConsentRequired or
   * CONSENT_WITHDRAWN answer leaves it usable for the retry with `acceptances` (validated by
   * the caller: every document at its current version), which are recorded as it is spent.
   * @throws InvalidCodeError, TooManyAttemptsError, ClinicUnavailableError, ConsentWithdrawnError
   */
  async signInWithCode(
    email: string,
    code: string,
    meta: RequestMeta,
    acceptances: Acceptance[] | null = null,
  ): Promise<IssuedSession | ConsentRequired> {
    const { config } = this.deps;
    const familyId = randomUUID();
    const refreshToken = randomBytes(32).toString('base64url');
    // verify() hands back the user and their clinic's status with the consumed code, and the
    // session when it could be written in the same statement (a user without a clinic).
    const verified = await this.codes.verify(email, code, {
      // Acceptances of every current version leave nothing to ask (the caller checked them).
      hold: acceptances
        ? undefined
        : async (user) =>
            this.consentsAskedOf(
              consentStateOf(user.consents, config, { askMissing: user.role === 'CLIENT' }),
            ),
      record: acceptances ? (tx, userId) => this.recordAccepted(tx, userId, acceptances, meta) : undefined,
      session: (who) => sessionWrites(who, { familyId, refreshToken, meta, method: 'code' }),
    });
    if ('held' in verified) return verified.held;
    const user = verified;
    // A first proof of the mailbox ended every earlier session (login-codes.ts, pre-hijack).
    if (user.firstProof) await this.deps.sessionsEnded(user.id);
    if (user.sessionId) return this.accessTokenFor(user, user.sessionId, refreshToken);
    if (user.clinicId) await this.ensureClinicUsable(user.clinicId, user.clinicStatus ?? 'FAILED');
    return this.issue(user, {
      familyId,
      epoch: user.sessionEpoch,
      meta,
      method: 'code',
      refreshToken,
      // The code is spent: a new one is needed.
      stale: () => new InvalidCodeError(ENDED_MEANWHILE),
    });
  }

  /** A session for a user who just proved themselves another way (activation). */
  async startSession(userId: string, meta: RequestMeta, method: string): Promise<IssuedSession> {
    const user = await this.deps.prisma.user.findUniqueOrThrow({
      where: { id: userId },
      include: { clinic: true },
    });
    if (user.clinic) await this.ensureClinicUsable(user.clinic.id, user.clinic.status);
    return this.issue(user, {
      familyId: randomUUID(),
      epoch: user.sessionEpoch,
      meta,
      method,
      stale: () => new InvalidCodeError(ENDED_MEANWHILE),
    });
  }

  /** Health check at sign-in (seed): never let anyone into a half-made or broken clinic. */
  private async ensureClinicUsable(clinicId: string, status: string): Promise<void> {
    const { provisioning, logger } = this.deps;
    if (status === 'PENDING' || status === 'PROVISIONING') {
      throw new ClinicUnavailableError(
        'Your clinic is still being set up; we will e-mail you when it is ready',
      );
    }
    if (status !== 'READY') throw new ClinicUnavailableError();
    const health = await provisioning.checkClinic(clinicId);
    if (health.dbStatus === 'HEALTHY') return;
    if (health.dbStatus === 'MISSING') {
      // Recreating it would hide a loss (issue 11): refuse, alert, leave it to an operator.
      await provisioning
        .reportMissingDatabase(health)
        .catch((error: unknown) => logger.error({ err: error, clinicId }, 'missing database alert failed'));
      throw new ClinicUnavailableError();
    }
    logger.warn({ clinicId, dbStatus: health.dbStatus }, 'clinic database unhealthy at sign-in; repairing');
    const repaired = await Promise.race([
      provisioning.repairClinic(clinicId).then(
        (result) => result.after.dbStatus === 'HEALTHY',
        (error: unknown) => {
          logger.error({ err: error, clinicId }, 'repair at sign-in failed');
          return false;
        },
      ),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), LOGIN_REPAIR_BUDGET_MS).unref()),
    ]);
    if (!repaired) throw new ClinicUnavailableError();
  }

  /**
   * Rotates a refresh token. Its child is derived from it (an HMAC under a server key), so a
   * spent token presented again within the grace gets the same child back, never a second
   * branch a thief could keep alive. After the grace it means the token leaked: the whole
   * family is revoked.
   * @throws InvalidRefreshTokenError
   */
  async refresh(refreshToken: string, meta: RequestMeta): Promise<IssuedSession> {
    const { prisma, logger } = this.deps;
    const session = await prisma.session.findUnique({
      where: { refreshTokenHash: sha256(refreshToken) },
      include: { user: { include: { clinic: true } } },
    });
    const now = Date.now();
    if (!session || session.revokedAt || session.expiresAt.getTime() <= now)
      throw new InvalidRefreshTokenError();
    if (session.rotatedAt) {
      if (now - session.rotatedAt.getTime() > REFRESH_GRACE_MS) {
        await prisma.$transaction(async (tx) => {
          await endFamily(tx, session.familyId);
          await recordAudit(tx, {
            action: 'auth.refresh_reuse',
            actorId: session.userId,
            ip: meta.ip,
            data: { familyId: session.familyId },
          });
        });
        logger.warn({ userId: session.userId }, 'spent refresh token reused; session family revoked');
        await this.deps.sessionsEnded(session.userId);
        throw new InvalidRefreshTokenError();
      }
    } else {
      // Of two concurrent refreshes with one token, one spends it; the other is within the grace.
      await prisma.session.updateMany({
        where: { id: session.id, rotatedAt: null },
        data: { rotatedAt: new Date() },
      });
    }
    const clinic = session.user.clinic;
    if (clinic && clinic.status !== 'READY') throw new ClinicUnavailableError();
    const child = createHmac('sha256', this.refreshKey).update(refreshToken).digest('base64url');
    // At the epoch read with the token, and while the session it rotates is live: an end of every
    // session of the user, or of this sign-in, committed since refuses the child.
    return this.issue(session.user, {
      familyId: session.familyId,
      parentId: session.id,
      epoch: session.user.sessionEpoch,
      meta,
      method: null,
      refreshToken: child,
      stale: () => new InvalidRefreshTokenError(),
    });
  }

  /** Ends the sign-in this token belongs to (its whole family). Same answer for any token. */
  async signOut(refreshToken: string): Promise<void> {
    const { prisma } = this.deps;
    const session = await prisma.session.findUnique({
      where: { refreshTokenHash: sha256(refreshToken) },
      select: { familyId: true, userId: true },
    });
    if (!session) return;
    await prisma.$transaction(async (tx) => {
      await endFamily(tx, session.familyId);
      await recordAudit(tx, { action: 'auth.sign_out', actorId: session.userId });
    });
    await this.deps.sessionsEnded(session.userId);
  }

  /**
   * A session (refresh token) and access token for a user the caller has just loaded; with a
   * `method`, the sign-in is audited in the same statement (one round trip, atomic). A given
   * `refreshToken` (a derived child) that already has its session gets that session again.
   * @throws `stale()` when every session of the user ended since `epoch` was read,
   * ClinicUnavailableError, InvalidRefreshTokenError
   */
  private async issue(
    user: { id: string; role: UserRole; clinicId: string | null },
    {
      familyId,
      epoch,
      meta,
      method,
      stale,
      parentId,
      refreshToken = randomBytes(32).toString('base64url'),
    }: SessionIssue,
  ): Promise<IssuedSession> {
    // Two conditions, checked in the statement that writes the session, each under a share lock:
    // - Only at the epoch read with the credentials (docs/decisions/089, session-ends.ts): an end
    //   of every session of the user committed since refuses the write; one under way (its bump
    //   of the epoch uncommitted) makes it wait, then refuses it; one that comes after waits for
    //   this commit and ends this session with the others.
    // - Only into a READY clinic: a concurrent deleteClinic claim waits for this commit, then
    //   revokes this session with the others (or, claimed first, leaves nothing to lock here). A
    //   check made earlier (ensureClinicUsable) leaves a window, up to the 5 minutes of a
    //   two-factor challenge.
    // And a refresh's child only while the session it rotates is live, under a share lock too
    // (the end of one sign-in, session-ends.ts `endFamily`).
    const parent = parentId
      ? Prisma.sql`JOIN sessions p ON p.id = ${parentId}::uuid AND p.revoked_at IS NULL`
      : Prisma.empty;
    const who = Prisma.sql`SELECT u.id, ${user.clinicId}::uuid AS clinic_id FROM users u ${parent}
      WHERE u.id = ${user.id}::uuid AND u.session_epoch = ${epoch}::int
        AND (${user.clinicId}::uuid IS NULL
             OR EXISTS (SELECT 1 FROM clinics
                         WHERE id = ${user.clinicId}::uuid AND status = 'READY'::"ClinicStatus" FOR SHARE))
      FOR SHARE OF u${parentId ? Prisma.sql`, p` : Prisma.empty}`;
    const [session] = await this.deps.prisma.$queryRaw<{ id: string }[]>`
      WITH ${sessionWrites(who, { familyId, refreshToken, meta, method })}
      SELECT id::text AS id FROM session`;
    if (session) return this.accessTokenFor(user, session.id, refreshToken);
    // Nothing written. The derived child exists already (a replay within the grace, or a
    // concurrent refresh): its session again, read in a statement of its own to see a row
    // committed meanwhile. Or the write was refused, and the user's epoch now tells why.
    const [found] = await this.deps.prisma.$queryRaw<{ id: string | null; epoch: number | null }[]>`
      SELECT (SELECT id::text FROM sessions
               WHERE refresh_token_hash = ${sha256(refreshToken)} AND revoked_at IS NULL) AS id,
             (SELECT session_epoch FROM users WHERE id = ${user.id}::uuid) AS epoch`;
    if (found?.id) return this.accessTokenFor(user, found.id, refreshToken);
    if (found?.epoch !== epoch) throw stale();
    // A sign-in's fresh token conflicts with nothing: only the clinic can have refused it.
    throw method !== null && user.clinicId ? new ClinicUnavailableError() : new InvalidRefreshTokenError();
  }

  /** The access token of session `sessionId`, with its refresh token: what a sign-in answers. */
  private accessTokenFor(
    user: { id: string; role: UserRole; clinicId: string | null },
    sessionId: string,
    refreshToken: string,
  ): IssuedSession {
    const userId = user.id;
    const expiresAt = new Date(Date.now() + ACCESS_TOKEN_TTL_SECONDS * 1000);
    const accessToken = signHs256(
      {
        role: user.role,
        cid: user.clinicId,
        sid: sessionId,
        sub: userId,
        iss: 'onramp',
        aud: 'onramp',
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(expiresAt.getTime() / 1000),
      },
      this.signingKey,
    );
    return { accessToken, refreshToken, expiresAt, userId };
  }

  /**
   * The caller of a request, from `Authorization: Bearer <accessToken>`: null without a bearer
   * token. A token is valid only while its session is (docs/decisions/016): its signature and
   * expiry, then its session in the database on every request, so signing out, a revoked
   * family, a deleted account or a password change (which end sessions) and a role change
   * (the token's claims no longer match) take effect at once on every instance.
   * @throws UNAUTHENTICATED when a token is given but is not, or no longer, valid.
   */
  async authenticate(header: string | null | undefined): Promise<Viewer | null> {
    const token = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
    if (!token) return null;
    const rejected = () => unauthenticated('Your session has ended or expired; sign in again');
    let payload: JWTPayload;
    try {
      payload = await this.verifiedTokens.payload(token);
    } catch {
      throw rejected();
    }
    const { sub, sid, exp } = payload;
    if (!isUuid(sub) || !isUuid(sid)) {
      throw rejected();
    }
    const live = await this.deps.sessionCache.get(sid, () => this.liveSession(sid));
    const clinicId = (payload.cid as string | null | undefined) ?? null;
    if (!live || live.userId !== sub || live.role !== payload.role || live.clinicId !== clinicId) {
      throw rejected();
    }
    return {
      userId: sub,
      role: live.role,
      clinicId,
      sessionId: sid,
      expiresAt: new Date((exp ?? 0) * 1000),
    };
  }

  /** {@link authenticate} for REST routes: null when absent or not valid. */
  async viewerFromAuthorization(header: string | null | undefined): Promise<Viewer | null> {
    try {
      return await this.authenticate(header);
    } catch (error) {
      if (error instanceof GraphQLError) return null;
      throw error;
    }
  }

  /**
   * Whether the session `viewer` was authenticated with is still valid (live subscriptions).
   * Read from the database, not the cache: it runs when a session end arrives.
   */
  async stillValid(viewer: Viewer): Promise<boolean> {
    if (viewer.expiresAt.getTime() <= Date.now()) return false;
    const live = await this.liveSession(viewer.sessionId);
    return live?.userId === viewer.userId && live.role === viewer.role && live.clinicId === viewer.clinicId;
  }

  /** A session neither revoked nor expired, with its user's current role and clinic. */
  private async liveSession(sessionId: string): Promise<LiveSession | undefined> {
    const [live] = await this.deps.prisma.$queryRaw<
      { user_id: string; role: UserRole; clinic_id: string | null; expires_at: Date }[]
    >`
      SELECT s.user_id::text AS user_id, u.role::text AS role, u.clinic_id::text AS clinic_id,
             s.expires_at
        FROM sessions s JOIN users u ON u.id = s.user_id
       WHERE s.id = ${sessionId}::uuid AND s.revoked_at IS NULL AND s.expires_at > now()`;
    return (
      live && { userId: live.user_id, role: live.role, clinicId: live.clinic_id, expiresAt: live.expires_at }
    );
  }
}
