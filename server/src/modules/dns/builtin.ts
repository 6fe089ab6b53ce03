/**
 * The built-in DNS provider: records live in the central `dns_records` table, which the
 * built-in DNS server (server.ts) reads on every query. Writing a row is publishing it, on
 * every instance at once and across restarts.
 */
import type { CentralPrisma } from '../../db/database.js';
import {
  ADDRESS_TYPES,
  acmeChallengeName,
  type DnsProvider,
  type DnsRecord,
  type DnsRecordType,
  type Ingress,
  ingressRecords,
  inZone,
  normaliseName,
  TXT_TTL,
} from './provider.js';

export class BuiltinDnsProvider implements DnsProvider {
  readonly kind = 'builtin' as const;

  constructor(
    private readonly prisma: CentralPrisma,
    private readonly zone: string,
    private readonly ingress: Ingress,
  ) {}

  async publishSubdomain(fqdn: string): Promise<DnsRecord[]> {
    const name = this.checkedName(fqdn);
    const wanted = ingressRecords(name, this.ingress);
    await this.prisma.$transaction(async (tx) => {
      // Address records pointing elsewhere (an ingress change) are replaced, TXT ones kept.
      await tx.dnsRecord.deleteMany({
        where: {
          name,
          type: { in: [...ADDRESS_TYPES] },
          NOT: { OR: wanted.map(({ type, value }) => ({ type, value })) },
        },
      });
      await tx.dnsRecord.createMany({ data: wanted, skipDuplicates: true });
      // A re-publish must also refresh a TTL that changed.
      for (const record of wanted) {
        await tx.dnsRecord.updateMany({
          where: { name, type: record.type, value: record.value, NOT: { ttl: record.ttl } },
          data: { ttl: record.ttl },
        });
      }
    });
    return wanted;
  }

  async unpublishSubdomain(fqdn: string): Promise<void> {
    const name = this.checkedName(fqdn);
    await this.prisma.dnsRecord.deleteMany({ where: { name: { in: [name, acmeChallengeName(name)] } } });
  }

  async setTxt(fqdn: string, values: string[]): Promise<void> {
    const name = this.checkedName(fqdn);
    const unique = [...new Set(values)];
    await this.prisma.$transaction(async (tx) => {
      await tx.dnsRecord.deleteMany({ where: { name, type: 'TXT', value: { notIn: unique } } });
      await tx.dnsRecord.createMany({
        data: unique.map((value) => ({ name, type: 'TXT', value, ttl: TXT_TTL })),
        skipDuplicates: true,
      });
    });
  }

  async clearTxt(fqdn: string): Promise<void> {
    const name = this.checkedName(fqdn);
    await this.prisma.dnsRecord.deleteMany({ where: { name, type: 'TXT' } });
  }

  records(fqdn: string): Promise<DnsRecord[]> {
    return this.recordsOf(this.checkedName(fqdn));
  }

  /** Every record of `name` (normalised), for the DNS server. */
  async recordsOf(name: string): Promise<DnsRecord[]> {
    const rows = await this.prisma.dnsRecord.findMany({
      where: { name },
      select: { name: true, type: true, value: true, ttl: true },
      orderBy: [{ type: 'asc' }, { value: 'asc' }],
    });
    return rows.map((row) => ({ ...row, type: row.type as DnsRecordType }));
  }

  /**
   * Whether `name` exists: it has records or is an ancestor of a name that does (an "empty
   * non-terminal", RFC 8020: answering NXDOMAIN for it would deny every name below).
   */
  async nameExists(name: string): Promise<boolean> {
    const rows = await this.prisma.$queryRaw<{ found: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM dns_records
        WHERE name = ${name} OR right(name, length(${name}) + 1) = '.' || ${name}
      ) AS found`;
    return rows[0]?.found === true;
  }

  private checkedName(fqdn: string): string {
    const name = normaliseName(fqdn);
    if (!inZone(name, this.zone) || name === this.zone) {
      throw new Error(`${name} is not a name below the zone ${this.zone}`);
    }
    return name;
  }
}
