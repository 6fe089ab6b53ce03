/**
 * Recorded consents (docs/decisions/053): which version of the terms and of the privacy notice a
 * user accepted, when, and from which address. Acceptances are written in the caller's
 * transaction (the one that creates the account or signs it in), so an account never exists
 * without them. Other modules use only these exports.
 */
import { z } from 'zod';
import type { CentralPrisma } from '../../db/database.js';
import { execute, type RawWriteDb } from '../../db/raw.js';
import type { Config } from '../../env.js';
import { ValidationError } from '../../errors.js';
import { Prisma } from '../../generated/central/client.js';
import { recordAudit } from '../audit/record.js';
import { endSessions } from '../auth/session-ends.js';

export const CONSENT_DOCUMENTS = ['TERMS', 'PRIVACY'] as const;
export type ConsentDocument = (typeof CONSENT_DOCUMENTS)[number];

export interface Acceptance {
  document: ConsentDocument;
  version: string;
}

/**
 * The shape of an `acceptedDocuments` input inside a zod-validated input (which keeps only the
 * fields it knows); whether the versions are current is {@link requireCurrent}'s to say.
 */
export const acceptancesSchema = z
  .array(z.object({ document: z.enum(CONSENT_DOCUMENTS), version: z.string().max(32) }))
  .max(CONSENT_DOCUMENTS.length * 2)
  .nullish();

type Db = Prisma.TransactionClient | CentralPrisma;

/**
 * Checks that `accepted` covers every document at its current version.
 * @param path the input field the acceptances came in (the ValidationError points at it).
 * @throws ValidationError on that field, naming what is missing or outdated.
 */
export function requireCurrent(
  config: Pick<Config, 'consentVersions'>,
  accepted: readonly Acceptance[] | null | undefined,
  path: string[],
): Acceptance[] {
  const problems = CONSENT_DOCUMENTS.flatMap((document) => {
    const current = config.consentVersions[document];
    const given = accepted?.find((acceptance) => acceptance.document === document);
    if (!given) return [`Accept the ${label(document)} (version ${current})`];
    if (given.version !== current)
      return [`The current ${label(document)} is version ${current}, not ${given.version}`];
    return [];
  });
  if (problems.length > 0) throw new ValidationError([{ path, message: problems.join('; ') }]);
  return CONSENT_DOCUMENTS.map((document) => ({ document, version: config.consentVersions[document] }));
}

/** Writes one row per acceptance, in the caller's transaction. */
export async function recordAcceptances(
  db: RawWriteDb,
  userId: string,
  acceptances: readonly Acceptance[],
  ip: string | null,
): Promise<void> {
  if (acceptances.length === 0) return;
  await execute(db, acceptancesSql(Prisma.sql`${userId}::uuid`, acceptances, ip));
}

/**
 * The insert of one row per acceptance of `user`, an SQL expression of its id (a value, or the id
 * a CTE of the same statement just inserted): one statement for any number of documents.
 */
export function acceptancesSql(
  user: Prisma.Sql,
  acceptances: readonly Acceptance[],
  ip: string | null,
): Prisma.Sql {
  return Prisma.sql`
    INSERT INTO consents (user_id, document, version, ip)
    SELECT ${user}, a.document, a.version, ${ip}::text
    FROM unnest(${acceptances.map((a) => a.document)}::text[], ${acceptances.map((a) => a.version)}::text[])
      AS a(document, version)`;
}

export interface ConsentState {
  /** Documents whose acceptance the user withdrew and has not given again. */
  withdrawn: ConsentDocument[];
  /** Documents the user accepted at an older version only: the new one must be accepted. */
  outdated: Acceptance[];
}

/**
 * What a sign-in must ask of this user. A user with no row for a document is not asked: the
 * account predates consents or was made by a path that records none (decision 053), but for
 * clients (`askMissing`), whose first e-mail-code sign-in is where they accept (decision 056).
 */
export async function consentState(
  db: Db,
  config: Pick<Config, 'consentVersions'>,
  userId: string,
  options: { askMissing?: boolean } = {},
): Promise<ConsentState> {
  const rows = await db.consent.findMany({
    where: { userId },
    select: { document: true, version: true, withdrawnAt: true },
  });
  const held = rows.map(({ document, version, withdrawnAt }) => ({
    document,
    version,
    withdrawn: withdrawnAt !== null,
  }));
  return consentStateOf(held, config, options);
}

/** One consent row as {@link consentStateOf} reads it. */
export interface ConsentRow {
  document: string;
  version: string;
  withdrawn: boolean;
}

/**
 * The user's consent rows as one jsonb array of {@link ConsentRow} (`[]` without any), for a
 * statement that reads them with something else (the attempt of a code sign-in, login-codes.ts).
 * @param userId an SQL expression of the user's id (uuid).
 */
export function consentRowsSql(userId: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`(SELECT coalesce(jsonb_agg(jsonb_build_object('document', c.document, 'version', c.version,
                                                  'withdrawn', c.withdrawn_at IS NOT NULL)), '[]'::jsonb)
       FROM consents c WHERE c.user_id = ${userId})`;
}

/** {@link consentState} of rows already read. */
export function consentStateOf(
  rows: readonly ConsentRow[],
  config: Pick<Config, 'consentVersions'>,
  { askMissing = false }: { askMissing?: boolean } = {},
): ConsentState {
  const state: ConsentState = { withdrawn: [], outdated: [] };
  for (const document of CONSENT_DOCUMENTS) {
    const mine = rows.filter((row) => row.document === document);
    const current = config.consentVersions[document];
    if (mine.length === 0) {
      if (askMissing) state.outdated.push({ document, version: current });
      continue;
    }
    const open = mine.filter((row) => !row.withdrawn);
    if (open.length === 0) state.withdrawn.push(document);
    else if (!open.some((row) => row.version === current))
      state.outdated.push({ document, version: current });
  }
  return state;
}

/** The user's consents, newest first. */
export function listConsents(db: Db, userId: string) {
  return db.consent.findMany({
    where: { userId },
    orderBy: [{ acceptedAt: 'desc' }, { id: 'asc' }],
    select: { id: true, document: true, version: true, acceptedAt: true, withdrawnAt: true, ip: true },
  });
}

/** Closes the user's open acceptances of `document`. @returns how many were open. */
export async function withdraw(db: Db, userId: string, document: ConsentDocument): Promise<number> {
  const { count } = await db.consent.updateMany({
    where: { userId, document, withdrawnAt: null },
    data: { withdrawnAt: new Date() },
  });
  return count;
}

/** deleteMyAccount: the rows stay, without identity (as the audit log's). */
export function anonymise(db: Db, userId: string) {
  return db.consent.updateMany({ where: { userId }, data: { userId: null, ip: null } });
}

function label(document: ConsentDocument): string {
  return document === 'TERMS' ? 'terms of use' : 'privacy notice';
}

/** Who changes their consents: the signed-in user, and their clinic for the audit entry. */
export interface ConsentViewer {
  userId: string;
  clinicId: string | null;
}

/**
 * A signed-in user's own consents, for the GraphQL resolvers: read and changed on the owner
 * connection (consents carry no clinic; the audit entry is written in the same transaction).
 */
export class ConsentService {
  /**
   * @param sessionsEnded tells every instance that the user's sessions ended (their cached
   * session checks go, their live subscriptions end): a withdrawn privacy notice ends them.
   */
  constructor(
    private readonly prisma: CentralPrisma,
    private readonly config: Config,
    private readonly sessionsEnded: (userId: string) => Promise<void>,
  ) {}

  list(userId: string) {
    return listConsents(this.prisma, userId);
  }

  /**
   * Withdrawing the privacy notice also ends every session of the user at once (sign-in answers
   * CONSENT_WITHDRAWN until it is accepted again, so no session may outlive it; decision 056).
   * @returns how many acceptances of `document` were open
   */
  async withdraw(viewer: ConsentViewer, document: ConsentDocument, ip: string | null): Promise<number> {
    const { count, sessionsEnded } = await this.prisma.$transaction(async (tx) => {
      const count = await withdraw(tx, viewer.userId, document);
      // Only a withdrawal that closed an acceptance: with none open, sign-in is not refused either.
      // No sign-in racing the withdrawal keeps a session either (docs/decisions/089).
      const ended = document === 'PRIVACY' && count > 0 ? await endSessions(tx, viewer.userId) : null;
      await recordAudit(tx, {
        action: 'consent.withdrawn',
        actorId: viewer.userId,
        clinicId: viewer.clinicId,
        ip,
        targetType: 'user',
        targetId: viewer.userId,
        data: ended !== null ? { document, sessionsEnded: ended } : { document },
      });
      return { count, sessionsEnded: ended !== null };
    });
    if (sessionsEnded) await this.sessionsEnded(viewer.userId);
    return count;
  }

  /** @throws ValidationError on `acceptedDocuments` when one is missing or not current */
  async accept(
    viewer: ConsentViewer,
    documents: readonly Acceptance[] | null,
    ip: string | null,
  ): Promise<void> {
    const acceptances = requireCurrent(this.config, documents, ['acceptedDocuments']);
    await this.prisma.$transaction(async (tx) => {
      await recordAcceptances(tx, viewer.userId, acceptances, ip);
      await recordAudit(tx, {
        action: 'consent.accepted',
        actorId: viewer.userId,
        clinicId: viewer.clinicId,
        ip,
        targetType: 'user',
        targetId: viewer.userId,
        data: { documents: acceptances.map(({ document, version }) => `${document} ${version}`) },
      });
    });
  }
}
