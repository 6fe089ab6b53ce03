/**
 * The built-in DNS provider: records live in the central `dns_records` table, which the
 * built-in DNS server (server.ts) answers from through its zone cache. Writing a row is
 * publishing it, on every instance (a trigger notifies their caches) and across restarts.
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
