/**
 * Issued certificates in the central `certificates` table: at most one live (unrevoked) row per
 * name, enforced by a partial unique index, so concurrent issuers agree on one certificate.
 * Leaf private keys are stored AES-256-GCM encrypted with ENCRYPTION_KEY, bound to their row's
 * name and serial (associated data), and only decrypted for tlsCredentials().
 */

import { decryptSecret, encryptSecret } from '../../crypto.js';
import type { CentralPrisma } from '../../db/database.js';
import { isUniqueViolation, queryRows, transaction } from '../../db/raw.js';
import { Prisma } from '../../generated/central/client.js';
import type { IssuedCertificate, TlsCredentials } from './issuer.js';

const DAY_MS = 24 * 60 * 60_000;

const PUBLIC_FIELDS = {
  fqdn: true,
  issuer: true,
  serialNumber: true,
  certificatePem: true,
  chainPem: true,
  notBefore: true,
  notAfter: true,
} as const;

/** What {@link toIssued} reads, as `live` and `save` select it ({@link ISSUED_COLUMNS}). */
type IssuedRow = Parameters<typeof toIssued>[0];
const ISSUED_COLUMNS = Prisma.sql`fqdn, issuer, serial_number AS "serialNumber", certificate_pem AS "certificatePem",
  chain_pem AS "chainPem", not_before AS "notBefore", not_after AS "notAfter"`;

export class CertificateStore {
  constructor(
    private readonly prisma: CentralPrisma,
    private readonly key: Buffer,
  ) {}

  /** The live certificate of `fqdn` still valid for at least `minDays`, if any. */
  async live(fqdn: string, minDays: number): Promise<IssuedCertificate | undefined> {
    // Through pg beside Prisma's engine (db/raw.ts, decision 070): every registration asks.
    const [row] = await queryRows<IssuedRow>(
      this.prisma,
      Prisma.sql`
        SELECT ${ISSUED_COLUMNS}
        FROM certificates
        WHERE fqdn = ${fqdn}::text AND revoked_at IS NULL
          AND not_after > ${new Date(Date.now() + minDays * DAY_MS)}::timestamptz
        LIMIT 1`,
    );
    return row ? toIssued(row) : undefined;
  }

  /**
   * Stores `issued` as the live certificate of its name, superseding (revoking) a previous one
   * with less than `minDays` left. When a concurrent caller stored a good one meanwhile, that
   * one wins and is returned. A name with no live certificate (every registration's) takes one
   * statement: the insert, which the partial unique index lets through only when no unrevoked
   * row exists. Otherwise a per-name lock orders the callers, and each checks again under it.
   */
  async save(issued: IssuedCertificate, privateKeyPem: string, minDays: number): Promise<IssuedCertificate> {
    const { fqdn } = issued;
    const privateKeyEnc = encryptSecret(privateKeyPem, this.key, associatedData(fqdn, issued.serialNumber));
    const insert = Prisma.sql`
      INSERT INTO certificates
        (fqdn, issuer, serial_number, certificate_pem, chain_pem, private_key_enc, not_before, not_after)
      VALUES (${fqdn}::text, ${issued.issuer}::text, ${issued.serialNumber}::text,
        ${issued.certificatePem}::text, ${issued.chainPem}::text, ${privateKeyEnc}::text,
        ${issued.notBefore}::timestamptz, ${issued.notAfter}::timestamptz)`;
    // Through pg beside Prisma's engine (db/raw.ts, decisions 070 and 074).
    const inserted = await queryRows(
      this.prisma,
      Prisma.sql`${insert} ON CONFLICT (fqdn) WHERE revoked_at IS NULL DO NOTHING RETURNING 1 AS inserted`,
    );
    if (inserted.length > 0) return issued;
    const renewBefore = new Date(Date.now() + minDays * DAY_MS);
    try {
      return await transaction(this.prisma, async (tx) => {
        await tx.execute(Prisma.sql`SELECT pg_advisory_xact_lock(hashtext(${`certificate:${fqdn}`}::text))`);
        // At most one unrevoked row (the partial unique index): kept when still good, revoked
        // when not.
        const [unrevoked] = await tx.query<IssuedRow>(
          Prisma.sql`SELECT ${ISSUED_COLUMNS} FROM certificates WHERE fqdn = ${fqdn}::text AND revoked_at IS NULL`,
        );
        if (unrevoked && unrevoked.notAfter > renewBefore) return toIssued(unrevoked);
        if (unrevoked) {
          await tx.execute(
            Prisma.sql`UPDATE certificates SET revoked_at = now() WHERE fqdn = ${fqdn}::text AND revoked_at IS NULL`,
          );
        }
        await tx.execute(insert);
        return issued;
      });
    } catch (error) {
      // The partial unique index is the last word: an insert outside the lock (the first
      // statement above, another caller's) may have won meanwhile.
      if (!isUniqueViolation(error, 'certificates_live_fqdn_key')) throw error;
      const winner = await this.live(fqdn, 0);
      if (!winner) throw error;
      return winner;
    }
  }

  /** The unrevoked certificate of `fqdn`, even when expired. */
  async current(fqdn: string): Promise<IssuedCertificate | undefined> {
    const row = await this.prisma.certificate.findFirst({
      where: { fqdn, revokedAt: null },
      select: PUBLIC_FIELDS,
      orderBy: { notAfter: 'desc' },
    });
    return row ? toIssued(row) : undefined;
  }

  /** Marks the live certificate of `fqdn` revoked. @returns the one revoked, if any. */
  async revoke(fqdn: string): Promise<IssuedCertificate | undefined> {
    const rows = await this.prisma.certificate.updateManyAndReturn({
      where: { fqdn, revokedAt: null },
      data: { revokedAt: new Date() },
      select: PUBLIC_FIELDS,
    });
    return rows[0] ? toIssued(rows[0]) : undefined;
  }

  /** Certificate, chain and decrypted key of the live certificate of `fqdn`. */
  async tlsCredentials(fqdn: string): Promise<TlsCredentials | undefined> {
    const row = await this.prisma.certificate.findFirst({
      where: { fqdn, revokedAt: null },
      select: { serialNumber: true, certificatePem: true, chainPem: true, privateKeyEnc: true },
    });
    if (!row) return undefined;
    return {
      key: decryptSecret(row.privateKeyEnc, this.key, associatedData(fqdn, row.serialNumber)),
      cert: row.certificatePem,
      ca: row.chainPem,
    };
  }
}

function associatedData(fqdn: string, serialNumber: string): string {
  return `certificate:${fqdn}:${serialNumber}`;
}

function toIssued(row: {
  fqdn: string;
  issuer: string;
  serialNumber: string;
  certificatePem: string;
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
}): IssuedCertificate {
  return { ...row, issuer: row.issuer === 'acme' ? 'acme' : 'builtin' };
}
