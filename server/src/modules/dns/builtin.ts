/**
 * The built-in DNS provider: records live in the central `dns_records` table, which the
 * built-in DNS server (server.ts) answers from through its zone cache. Writing a row is
 * publishing it, on every instance (a trigger notifies their caches) and across restarts.
 */
import type { CentralPrisma } from '../../db/database.js';
import { execute } from '../../db/raw.js';
import { Prisma } from '../../generated/central/client.js';
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
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly prisma: CentralPrisma,
    private readonly zone: string,
    private readonly ingress: Ingress,
  ) {}

  /**
   * Calls `listener` after each write of this provider, before the write's promise resolves:
   * this instance's DNS server then answers what was just published (other instances learn it
   * from the trigger's notification).
   */
  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  async publishSubdomain(fqdn: string): Promise<DnsRecord[]> {
    const name = this.checkedName(fqdn);
    const wanted = ingressRecords(name, this.ingress);
    // One statement (registration's critical path, docs/decisions/063): address records pointing
    // elsewhere (an ingress change) are deleted, TXT ones kept; the wanted ones are written, or
    // their TTL refreshed when it changed. The two touch disjoint rows of one snapshot.
    // Through pg beside Prisma's engine (db/raw.ts, decision 070).
    await execute(
      this.prisma,
      Prisma.sql`
      WITH wanted AS (
        SELECT * FROM unnest(${wanted.map((r) => r.type)}::text[], ${wanted.map((r) => r.value)}::text[],
          ${wanted.map((r) => r.ttl)}::int[]) AS w(type, value, ttl)
      ), replaced AS (
        DELETE FROM dns_records d
        WHERE d.name = ${name}::text AND d.type = ANY(${[...ADDRESS_TYPES]}::text[])
          AND NOT EXISTS (SELECT 1 FROM wanted w WHERE w.type = d.type AND w.value = d.value)
      )
      INSERT INTO dns_records (name, type, value, ttl)
      SELECT ${name}::text, type, value, ttl FROM wanted
      ON CONFLICT (name, type, value) DO UPDATE SET ttl = excluded.ttl
      WHERE dns_records.ttl <> excluded.ttl`,
    );
    this.changed();
    return wanted;
  }

  async unpublishSubdomain(fqdn: string): Promise<void> {
    const name = this.checkedName(fqdn);
    await this.prisma.dnsRecord.deleteMany({ where: { name: { in: [name, acmeChallengeName(name)] } } });
    this.changed();
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
    this.changed();
  }

  async clearTxt(fqdn: string): Promise<void> {
    const name = this.checkedName(fqdn);
    await this.prisma.dnsRecord.deleteMany({ where: { name, type: 'TXT' } });
    this.changed();
  }

  /** Every record of the subdomain (the console's clinic page), read from the table. */
  async records(fqdn: string): Promise<DnsRecord[]> {
    const rows = await this.prisma.dnsRecord.findMany({
      where: { name: this.checkedName(fqdn) },
      select: { name: true, type: true, value: true, ttl: true },
      orderBy: [{ type: 'asc' }, { value: 'asc' }],
    });
    return rows.map((row) => ({ ...row, type: row.type as DnsRecordType }));
  }

  private checkedName(fqdn: string): string {
    const name = normaliseName(fqdn);
    if (!inZone(name, this.zone) || name === this.zone) {
      throw new Error(`${name} is not a name below the zone ${this.zone}`);
    }
    return name;
  }
}
