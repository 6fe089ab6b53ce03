/**
 * E-mail code sign-in (clients' sign-in, README "Security"; docs/decisions/008): a 6-digit code valid 10
 * minutes, stored only as an HMAC under a server secret, compared in constant time, single use.
 * Five wrong tries burn it, and asking for a new code does not reset that budget (only the
 * window's end does; the window grows with the wrong codes, docs/decisions/087). Sending is
 * limited per e-mail (a growing cooldown) and per address.
 *
 * No answer here reveals whether an e-mail has an account: requestLoginCode does the same
 * work and returns the same value for any address, and limits apply to the address typed,
 * known or not.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import { queryRows, type RawDb } from '../../db/raw.js';
import type { Config } from '../../env.js';
import { RateLimitedError } from '../../errors.js';
import { Prisma } from '../../generated/central/client.js';
import type { UserRole } from '../../generated/central/enums.js';
import type { Logger } from '../../logger.js';
import { auditActionSql, recordAudit } from '../audit/record.js';
import { type ConsentRow, consentRowsSql } from '../consents/service.js';
import { enqueueMail, type MailTransport, type OutgoingMail, sendThenRecordMail } from '../mail/service.js';
import { InvalidCodeError } from '../users/errors.js';
import { normaliseEmail } from '../users/validation.js';
import { TooManyAttemptsError } from './errors.js';
import { type LimitStore, Lockout } from './lockout.js';

export const CODE_TTL_SECONDS = 10 * 60;
export const MAX_FAILED_ATTEMPTS = 5;
/**
 * How long an e-mail's window lasts: an hour, doubled for every 5 wrong codes since its last right
 * one, at most a day (docs/decisions/087). Someone who spends a window's guesses, or a few fewer,
 * window after window, waits longer and longer for the next ones; the owner's sign-in resets it.
 */
const windowLength = (row: string) =>
  Prisma.sql`least(interval '24 hours', interval '1 hour' * power(2, least(${Prisma.raw(row)}.failed_since_success / ${MAX_FAILED_ATTEMPTS}, 5)))`;
/** The row's window is over: its budgets start again. */
const windowOver = (row: string) =>
  Prisma.sql`${Prisma.raw(row)}.window_started_at < now() - ${windowLength(row)}`;
/** A row's window has lapsed (or it never sent a code): budgets start again. */
const FRESH_WINDOW = Prisma.sql`(l.last_sent_at IS NULL OR ${windowOver('l')})`;
/**
 * Cooldown after the n-th code of a window (n = l.sends ≥ 1): 30 s, 60 s, 120 s … capped at
 * 15 min (the exponent is capped first, so no interval overflows).
 */
const COOLDOWN = Prisma.sql`least(interval '15 minutes', interval '30 seconds' * power(2, least(l.sends - 1, 10)))`;

/**
 * Codes mailed at once from this process at most (each may hold an SMTP connection); beyond
 * that, the job queue sends them as it sends any mail.
 */
const MAX_IMMEDIATE_SENDS = 16;

export interface LoginCodeDeps {
  limits: LimitStore;
  /** Codes are sent at once through it (see deliver). */
  mail: MailTransport;
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
}

export class LoginCodes {
  private readonly key: Buffer;
  /** Per address: generous, since a whole clinic may sit behind one NAT address. */
  private readonly addresses: Lockout;

  constructor(private readonly deps: LoginCodeDeps) {
    this.key = createHmac('sha256', deps.config.jwtSecret).update('onramp login codes').digest();
    this.addresses = new Lockout(deps.limits, 'login_code.address', {
      threshold: 50,
      baseSeconds: 600,
      windowSeconds: 600,
    });
  }

  private hmac(email: string, code: string): string {
    return createHmac('sha256', this.key).update(`${email}\n${code}`).digest('hex');
  }

  /**
   * Sends a code when the e-mail belongs to a user, creating the CLIENT user first when only a
   * client record has it. @returns the code's lifetime in seconds, whatever the e-mail.
   * @throws RateLimitedError when this e-mail or address asked too often (known or not).
   */
  async request(rawEmail: string, ip: string | null): Promise<number> {
    const { prisma } = this.deps;
    const email = normaliseEmail(rawEmail);
    const addressKey = `ip:${ip ?? 'unknown'}`;
    // LOGIN_CODE_SEND_LIMITS=off (benchmarks only; production refuses it) skips both send limits.
    const limited = this.deps.config.loginCodeSendLimits;
    // Counted per request before anything else (lockout.ts), so a burst from one address, or a
    // spray of e-mails from one place, sends at most the limit.
    const addressWait = limited ? await this.addresses.reserve(addressKey) : 0;
    if (addressWait > 0) throw new RateLimitedError(addressWait);

    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    // One statement, so one round trip: the row lock of ON CONFLICT serialises requests for one
    // e-mail, so the cooldown is checked and spent atomically. A new code in the same window
    // keeps failed_attempts (asking again does not buy more guesses); a fresh window resets it.
    // No `sent` back means the cooldown refused it. The same write for every e-mail: an unknown
    // one simply never receives the code.
    //
    // The user the delivery needs comes back with it (docs/decisions/062): the same index probe
    // for every e-mail, known or not, and nothing before the answer looks at what it found.
    const [row] = await queryRows<{ sent: boolean | null; user_id: string | null; clinic_id: string | null }>(
      prisma,
      Prisma.sql`
      WITH code AS (
        INSERT INTO login_codes AS l
               (email, code_hmac, expires_at, failed_attempts, window_started_at, sends, last_sent_at)
        VALUES (${email}, ${this.hmac(email, code)}, now() + make_interval(secs => ${CODE_TTL_SECONDS}),
                0, now(), 1, now())
        ON CONFLICT (email) DO UPDATE SET
          code_hmac = excluded.code_hmac,
          expires_at = excluded.expires_at,
          last_sent_at = now(),
          sends = CASE WHEN ${FRESH_WINDOW} THEN 1 ELSE l.sends + 1 END,
          failed_attempts = CASE WHEN ${FRESH_WINDOW} THEN 0 ELSE l.failed_attempts END,
          window_started_at = CASE WHEN ${FRESH_WINDOW} THEN now() ELSE l.window_started_at END
        WHERE NOT ${limited} OR ${FRESH_WINDOW} OR l.sends = 0 OR l.last_sent_at + ${COOLDOWN} <= now()
        RETURNING true AS sent)
      SELECT (SELECT sent FROM code) AS sent, u.id::text AS user_id, u.clinic_id::text AS clinic_id
        FROM (SELECT 1) one LEFT JOIN users u ON u.email = ${email}`,
    );
    if (!row?.sent) {
      const [wait] = await prisma.$queryRaw<{ wait_ms: number }[]>`
        SELECT (extract(epoch FROM l.last_sent_at + ${COOLDOWN} - now()) * 1000)::float8 AS wait_ms
          FROM login_codes l WHERE l.email = ${email}`;
      throw new RateLimitedError((wait?.wait_ms ?? 1000) / 1000);
    }
    const known = row.user_id ? { id: row.user_id, clinicId: row.clinic_id } : null;
    // Everything that depends on whether the e-mail is known happens after the answer, so the
    // answer and its timing are the same for every address.
    const delivery = this.deliver(email, code, ip, known)
      .catch((error: unknown) => this.deps.logger.error({ err: error }, 'login code delivery failed'))
      .finally(() => this.deliveries.delete(delivery));
    this.deliveries.add(delivery);
    return CODE_TTL_SECONDS;
  }

  /**
   * Forgets e-mails whose code and budgets have all lapsed (rows exist for unknown e-mails too,
   * to keep answers identical; this keeps the table from growing with them).
   * @returns how many rows went.
   */
  async prune(): Promise<number> {
    return this.deps.prisma.$executeRaw`
      DELETE FROM login_codes l
       WHERE expires_at < now() - interval '1 hour'
         AND (last_sent_at IS NULL OR last_sent_at < now() - interval '1 hour')
         -- An e-mail guessed at is remembered a day past its window, so waiting does not reset it.
         AND l.window_started_at < now() - ${windowLength('l')}
             - CASE WHEN l.failed_since_success > 0 THEN interval '24 hours' ELSE interval '0' END`;
  }

  /** Deliveries still running (tests and shutdown wait for them). */
  readonly deliveries = new Set<Promise<void>>();

  async idle(): Promise<void> {
    await Promise.all(this.deliveries);
  }

  /** Immediate sends in flight (bounded by MAX_IMMEDIATE_SENDS). */
  private sendingNow = 0;

  /**
   * Sends the code when the e-mail belongs to a user (creating a CLIENT user from a client record).
   * The code is sent from here at once, then its outbox row and the audit entry are written in
   * one statement; the job queue only steps in when that send fails (see sendThenRecordMail).
   */
  private async deliver(
    email: string,
    code: string,
    ip: string | null,
    known: { id: string; clinicId: string | null } | null,
  ): Promise<void> {
    // Not known yet: a client record may make this e-mail a user now.
    const user = known ?? (await this.userFor(email));
    if (!user) return;
    const { prisma, config, logger } = this.deps;
    const mail: OutgoingMail = {
      to: email,
      kind: 'login_code',
      subject: 'Your Onramp sign-in code',
      text: `Your sign-in code is ${code}.\n\nIt works once, for ${CODE_TTL_SECONDS / 60} minutes. If you did not ask for it, ignore this e-mail.`,
    };
    const audit = Prisma.sql`
      INSERT INTO audit_log (action, actor_id, clinic_id, ip)
      VALUES (${auditActionSql('auth.code_requested')}, ${user.id}::uuid, ${user.clinicId}::uuid, ${ip}::text)`;
    if (this.sendingNow >= MAX_IMMEDIATE_SENDS) {
      await enqueueMail(prisma, mail, config.encryptionKey, { alongside: audit });
      return;
    }
    this.sendingNow++;
    try {
      await sendThenRecordMail(
        { prisma, transport: this.deps.mail, logger, key: config.encryptionKey },
        mail,
        {
          alongside: audit,
        },
      );
    } finally {
      this.sendingNow--;
    }
  }

  /**
   * A user for this e-mail: the existing one, or a CLIENT user created from a client record
   * (person or company) with that e-mail. Concurrent requests create one user: the unique
   * e-mail decides, the loser reads the winner's row.
   */
  async userFor(email: string): Promise<{ id: string; clinicId: string | null } | null> {
    const { prisma } = this.deps;
    const existing = await prisma.user.findUnique({ where: { email }, select: { id: true, clinicId: true } });
    if (existing) return existing;
    const record = await prisma.clientRecord.findFirst({ where: { email }, orderBy: { createdAt: 'asc' } });
    if (!record) return null;
    try {
      return await prisma.$transaction(async (tx) => {
        const user = await tx.user.create({
          data: {
            email,
            role: 'CLIENT',
            clinicId: record.clinicId,
            firstName: record.firstName ?? record.legalName ?? '',
            lastName: record.lastName ?? '',
          },
          select: { id: true, clinicId: true },
        });
        // Only this clinic's records: a user belongs to one clinic, never linked across clinics.
        await tx.clientRecord.updateMany({
          where: { email, userId: null, clinicId: record.clinicId },
          data: { userId: user.id },
        });
        await recordAudit(tx, {
          action: 'user.created_from_client_record',
          actorId: user.id,
          clinicId: record.clinicId,
        });
        return user;
      });
    } catch (error) {
      if ((error as { code?: string }).code !== 'P2002') throw error;
      return prisma.user.findUnique({ where: { email }, select: { id: true, clinicId: true } });
    }
  }

  /**
   * Consumes the code. @returns its user, with what signing in needs (no second lookup), or
   * what `options.hold` answered instead (the code then stays usable).
   * @throws InvalidCodeError (wrong, expired, used or unknown: one answer for all) or
   * TooManyAttemptsError once the budget is spent; whatever `options.hold` throws.
   */
  async verify<Held = never>(
    rawEmail: string,
    code: string,
    options: VerifyOptions<Held> = {},
  ): Promise<CodeUser | { held: Held }> {
    const { prisma } = this.deps;
    const email = normaliseEmail(rawEmail);
    // The attempt is counted before the code is compared, in one statement (the row lock orders
    // concurrent attempts): of N parallel guesses at most MAX_FAILED_ATTEMPTS are compared. A
    // lapsed window starts a new budget. The same statement reads what a matching code needs
    // next (the user and their consents, for `hold`), for every attempt alike, right or wrong,
    // known e-mail or not: the answer to a wrong code is the same, and so is the work behind it.
    const [row] = await queryRows<{
      failed_attempts: number | null;
      code_hmac: string | null;
      expires_at: Date | null;
      has_row: boolean;
      user_id: string | null;
      role: UserRole | null;
      session_epoch: number | null;
      consents: ConsentRow[];
    }>(
      prisma,
      Prisma.sql`
      WITH attempt AS (
        UPDATE login_codes l
           SET failed_attempts = CASE WHEN ${windowOver('l')} THEN 1 ELSE l.failed_attempts + 1 END,
               window_started_at = CASE WHEN ${windowOver('l')} THEN now() ELSE l.window_started_at END,
               failed_since_success = l.failed_since_success + 1
         WHERE l.email = ${email}
           AND (${windowOver('l')} OR l.failed_attempts < ${MAX_FAILED_ATTEMPTS})
     RETURNING code_hmac, expires_at, failed_attempts)
      SELECT a.failed_attempts, a.code_hmac, a.expires_at,
             EXISTS (SELECT 1 FROM login_codes WHERE email = ${email}) AS has_row,
             u.id::text AS user_id, u.role::text AS role, u.session_epoch,
             ${consentRowsSql(Prisma.sql`u.id`)} AS consents
        FROM (SELECT 1) one
        LEFT JOIN attempt a ON true
        LEFT JOIN users u ON u.email = ${email}`,
    );
    if (!row || row.failed_attempts === null) {
      // The budget is spent, or no code was ever asked for this e-mail. Rows exist for every
      // e-mail a code was asked for, known or not: this tells nothing about accounts.
      if (row?.has_row) throw new TooManyAttemptsError();
      throw new InvalidCodeError('This code is invalid or has expired');
    }

    const expected = row.code_hmac ? Buffer.from(row.code_hmac, 'hex') : Buffer.alloc(32);
    const given = Buffer.from(this.hmac(email, /^\d{6}$/.test(code) ? code : 'invalid'), 'hex');
    const matches =
      timingSafeEqual(expected, given) &&
      row.code_hmac !== null &&
      row.expires_at !== null &&
      row.expires_at.getTime() > Date.now();
    if (!matches) {
      if (row.failed_attempts >= MAX_FAILED_ATTEMPTS) {
        // The last attempt of the budget was wrong: the code is burnt.
        await prisma.$executeRaw`UPDATE login_codes SET code_hmac = NULL WHERE email = ${email}`;
        throw new TooManyAttemptsError();
      }
      throw new InvalidCodeError('This code is invalid or has expired');
    }
    // No user: the statement that spends the code finds none either and answers INVALID_CODE.
    if (options.hold && row.user_id && row.role) {
      const holder = { id: row.user_id, role: row.role, consents: row.consents };
      const held = await this.holdBeforeSpending(email, row.code_hmac as string, holder, options.hold);
      if (held) return held;
    }
    // Single use: of two concurrent uses of one code, only one clears it (compare-and-set on the
    // HMAC just compared). The user comes back in the same round trip.
    //
    // Pre-hijack: whoever registered this e-mail before its owner proved it could have set the
    // password (and so could still sign in after the owner starts using the account). When the
    // mailbox is proven for the first time, that password is cleared and every session started
    // before ends, in the same statement; the owner signs in with codes until they set one.
    //
    // The new session is written in the same statement for a user without a clinic (no check to
    // wait for; the sessions it ends are those that existed before it). A clinic's database is
    // checked before anyone enters it, so its users' sessions are written after that check.
    //
    // The code is spent only while the user's `session_epoch` is the one read with the code's
    // attempt (and the consents `hold` looked at), under a share lock on the user's row until
    // this commits (docs/decisions/089, session-ends.ts): after an end of every session of the
    // user committed since (a factor change on another device), the sign-in is refused and the
    // code stays for the next try; an end that comes after waits, then ends this session too.
    const session = options.session
      ? Prisma.sql`, ${options.session(Prisma.sql`SELECT id, clinic_id FROM target WHERE clinic_id IS NULL`)}`
      : Prisma.empty;
    const sessionId = options.session ? Prisma.sql`(SELECT id::text FROM session)` : Prisma.sql`NULL::text`;
    // Through the pool (db/raw.ts) unless in the transaction that records acceptances.
    const consume = (db: RawDb) =>
      queryRows<{
        id: string;
        role: UserRole;
        clinic_id: string | null;
        clinic_status: string | null;
        first_proof: boolean;
        session_id: string | null;
      }>(
        db,
        Prisma.sql`
      WITH used AS (
        UPDATE login_codes SET code_hmac = NULL, failed_attempts = 0, failed_since_success = 0
         WHERE email = ${email} AND code_hmac = ${row.code_hmac}
           AND EXISTS (SELECT 1 FROM users
                        WHERE email = ${email} AND session_epoch = ${row.session_epoch}::int FOR SHARE)
        RETURNING email),
      target AS (
        SELECT u.id, u.role, u.clinic_id, u.email_verified_at IS NULL AS first_proof,
               u.password_hash IS NOT NULL AS had_password
          FROM used JOIN users u ON u.email = used.email),
      proven AS (
        UPDATE users SET email_verified_at = now(), password_hash = NULL, session_epoch = session_epoch + 1
         WHERE id IN (SELECT id FROM target WHERE first_proof)
        RETURNING id),
      ended AS (
        UPDATE sessions SET revoked_at = now()
         WHERE user_id IN (SELECT id FROM proven) AND revoked_at IS NULL
        RETURNING id),
      audited AS (
        INSERT INTO audit_log (action, actor_id, clinic_id, target_type, target_id, data)
        SELECT ${auditActionSql('user.email_proven')}, t.id, t.clinic_id, 'user', t.id::text,
               jsonb_build_object('method', 'code', 'passwordCleared', t.had_password,
                                  'sessionsEnded', (SELECT count(*) FROM ended))
          FROM target t WHERE t.first_proof)${session}
      SELECT t.id::text AS id, t.role::text AS role, t.clinic_id::text AS clinic_id,
             c.status::text AS clinic_status, t.first_proof, ${sessionId} AS session_id
        FROM target t LEFT JOIN clinics c ON c.id = t.clinic_id`,
      );
    // Acceptances given with the code are written in the transaction that spends it.
    const { record } = options;
    const [user] = record
      ? await prisma.$transaction(async (tx) => {
          const rows = await consume(tx);
          if (rows[0]) await record(tx, rows[0].id);
          return rows;
        })
      : await consume(prisma);
    if (!user) throw new InvalidCodeError('This code is invalid or has expired');
    if (user.first_proof) {
      // `ended` saw the sessions committed before its statement began. A sign-in that locked the
      // user's row first (with the old password) made `proven` wait for its commit, and its
      // session is ended here, by a statement that sees it (session-ends.ts).
      await prisma.$executeRaw`
        UPDATE sessions SET revoked_at = now()
         WHERE user_id = ${user.id}::uuid AND revoked_at IS NULL AND id IS DISTINCT FROM ${user.session_id}::uuid`;
    }
    return {
      id: user.id,
      role: user.role,
      clinicId: user.clinic_id,
      clinicStatus: user.clinic_status,
      firstProof: user.first_proof,
      sessionId: user.session_id,
      // `proven` bumped it for a first proof.
      sessionEpoch: (row.session_epoch ?? 0) + (user.first_proof ? 1 : 0),
    };
  }

  /**
   * Runs `hold` for the code's user before the code is spent. An answer (or a throw) gives the
   * attempt back, compare-and-set on the HMAC just matched: only the holder of the right code
   * gets it back, so wrong guesses in parallel are still held to MAX_FAILED_ATTEMPTS.
   */
  private async holdBeforeSpending<Held>(
    email: string,
    codeHmac: string,
    user: CodeHolder,
    hold: (user: CodeHolder) => Promise<Held | null>,
  ): Promise<{ held: Held } | null> {
    const { prisma } = this.deps;
    const giveBack = () => prisma.$executeRaw`
      UPDATE login_codes SET failed_attempts = greatest(failed_attempts - 1, 0),
                             failed_since_success = greatest(failed_since_success - 1, 0)
       WHERE email = ${email} AND code_hmac = ${codeHmac}`;
    let held: Held | null;
    try {
      held = await hold(user);
    } catch (error) {
      await giveBack();
      throw error;
    }
    if (held === null) return null;
    await giveBack();
    return { held };
  }
}

/** What {@link LoginCodes.verify} may do between a matching code and spending it. */
export interface VerifyOptions<Held> {
  /**
   * Asked once the code matched, before it is spent (docs/decisions/056): a non-null answer is
   * returned instead of a sign-in, and so is a throw; either way the code stays usable and the
   * attempt is given back, so answering it costs the user nothing from their budget.
   */
  hold?: (user: CodeHolder) => Promise<Held | null>;
  /** Writes with the spending of the code, in its transaction (the acceptances given with it). */
  record?: (tx: Prisma.TransactionClient, userId: string) => Promise<void>;
  /**
   * CTEs that write the new session in the statement that spends the code, for the user `who`
   * selects (columns `id`, `clinic_id`; no row when the user has a clinic to check first). The
   * first of them is `session`, returning the session's `id` ({@link CodeUser.sessionId}).
   */
  session?: (who: Prisma.Sql) => Prisma.Sql;
}

/** The user of a matching code, as `hold` sees them (read with the attempt). */
export interface CodeHolder {
  id: string;
  role: UserRole;
  consents: ConsentRow[];
}

/** The user a code signed in, and what a session for them needs. */
export interface CodeUser {
  id: string;
  role: UserRole;
  clinicId: string | null;
  /** Their clinic's status, when they belong to one. */
  clinicStatus: string | null;
  /** This code proved the mailbox for the first time: earlier sessions and password are gone. */
  firstProof: boolean;
  /** The session written with the spending of the code (`VerifyOptions.session`), if one was. */
  sessionId: string | null;
  /** The user's `session_epoch` once the code is spent: a session is written only at it. */
  sessionEpoch: number;
}
