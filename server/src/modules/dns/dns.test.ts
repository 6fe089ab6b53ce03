import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  decode,
  framed,
  query,
  rcodeOf,
  resolverFor,
  tcpExchange,
  udpExchange,
} from '../../../test/dns-client.js';
import { startTestApp } from '../../../test/harness.js';
import { BuiltinDnsProvider } from './builtin.js';

const t = await startTestApp({ INGRESS_IPV4: '192.0.2.10', INGRESS_IPV6: '2001:db8::10' });
const zone = t.config.baseDomain;
const dns = t.app.deps.dns;
const resolver = () => resolverFor(t.dnsPort);
const fresh = () => `clinic-${randomBytes(5).toString('hex')}.${zone}`;

describe('the built-in DNS server, through node’s resolver (UDP)', () => {
  it('answers A and AAAA of a published subdomain with the ingress addresses', async () => {
    const name = fresh();
    expect(dns.kind).toBe('builtin');
    const published = await dns.publishSubdomain(name);
    expect(published).toEqual([
      { name, type: 'A', value: '192.0.2.10', ttl: 300 },
      { name, type: 'AAAA', value: '2001:db8::10', ttl: 300 },
    ]);
    expect(await resolver().resolve4(name, { ttl: true })).toEqual([{ address: '192.0.2.10', ttl: 300 }]);
    expect(await resolver().resolve6(name)).toEqual(['2001:db8::10']);
  });

  it('publishing twice changes nothing; unpublishing makes the name unknown', async () => {
    const name = fresh();
    await dns.publishSubdomain(name);
    await dns.publishSubdomain(name);
    expect(await t.app.deps.db.prisma.dnsRecord.count({ where: { name } })).toBe(2);
    await dns.unpublishSubdomain(name);
    await dns.unpublishSubdomain(name);
    await expect(resolver().resolve4(name)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('answers names whatever their case', async () => {
    const name = fresh();
    await dns.publishSubdomain(name.toUpperCase());
    expect(await resolver().resolve4(name)).toEqual(['192.0.2.10']);
    const mixed = name.replace(/[a-z]/g, (c, i: number) => (i % 2 ? c.toUpperCase() : c));
    expect(await resolver().resolve4(mixed)).toEqual(['192.0.2.10']);
    // The answer repeats the question's spelling (resolvers using 0x20 randomisation compare it).
    const reply = decode((await udpExchange(t.dnsPort, query(mixed, 'A'))) as Buffer);
    expect(reply.answers?.[0]?.name).toBe(mixed);
  });

  it('answers TXT records set for ACME, and forgets them when cleared', async () => {
    const name = `_acme-challenge.${fresh()}`;
    await dns.setTxt(name, ['first-value', 'second-value']);
    expect((await resolver().resolveTxt(name)).map((parts) => parts.join('')).sort()).toEqual([
      'first-value',
      'second-value',
    ]);
    await dns.setTxt(name, ['second-value']);
    expect(await resolver().resolveTxt(name)).toEqual([['second-value']]);
    await dns.clearTxt(name);
    await expect(resolver().resolveTxt(name)).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('answers NXDOMAIN, authoritatively with the SOA, for unknown names of the zone', async () => {
    const name = `nobody-${Date.now()}.${zone}`;
    await expect(resolver().resolve4(name)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const reply = decode((await udpExchange(t.dnsPort, query(name, 'A'))) as Buffer);
    expect(reply.rcode).toBe('NXDOMAIN');
    expect(reply.flag_aa).toBe(true);
    expect(reply.answers).toEqual([]);
    expect(reply.authorities?.[0]).toMatchObject({ type: 'SOA', name: zone });
  });

  it('answers NODATA (NOERROR, SOA, no answer) for a type a known name lacks, and for empty non-terminals', async () => {
    const name = fresh();
    await dns.publishSubdomain(name);
    await expect(resolver().resolveTxt(name)).rejects.toMatchObject({ code: 'ENODATA' });
    const reply = decode((await udpExchange(t.dnsPort, query(name, 'MX'))) as Buffer);
    expect(reply.rcode).toBe('NOERROR');
    expect(reply.flag_aa).toBe(true);
    expect(reply.authorities?.[0]).toMatchObject({ type: 'SOA' });
    // Only `_acme-challenge.<x>` has records: <x> exists all the same.
    const parent = fresh();
    await dns.setTxt(`_acme-challenge.${parent}`, ['v']);
    expect(rcodeOf((await udpExchange(t.dnsPort, query(parent, 'A'))) as Buffer)).toBe(0);
  });

  it('answers SOA and NS for the apex', async () => {
    const soa = await resolver().resolveSoa(zone);
    expect(soa).toMatchObject({ nsname: `ns1.${zone}`, hostmaster: `hostmaster.${zone}`, minttl: 60 });
    expect(await resolver().resolveNs(zone)).toEqual([`ns1.${zone}`]);
  });

  it('refuses names outside its zone, without claiming authority', async () => {
    await expect(resolver().resolve4('example.com')).rejects.toMatchObject({ code: 'EREFUSED' });
    // A suffix that is not a label boundary is outside too.
    const reply = decode((await udpExchange(t.dnsPort, query(`evil${zone}`, 'A'))) as Buffer);
    expect(reply.rcode).toBe('REFUSED');
    expect(reply.flag_aa).toBe(false);
  });

  it('sets TC when a UDP answer does not fit, and node’s resolver then gets it all over TCP', async () => {
    const name = `_acme-challenge.${fresh()}`;
    const values = Array.from({ length: 20 }, (_, i) => `${String(i).padStart(2, '0')}-${'x'.repeat(200)}`);
    await dns.setTxt(name, values);
    const udp = decode((await udpExchange(t.dnsPort, query(name, 'TXT'))) as Buffer);
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    // An EDNS client offering 1232 bytes still cannot get ~4 KB over UDP.
    const edns = await udpExchange(t.dnsPort, query(name, 'TXT', { edns: 4096 }));
    expect(decode(edns as Buffer).flag_tc).toBe(true);
    expect((edns as Buffer).length).toBeLessThanOrEqual(1232);
    const answered = await resolver().resolveTxt(name);
    expect(answered.map((parts) => parts.join('')).sort()).toEqual(values);
  });

  it('answers records written by another instance at once (no cache to invalidate)', async () => {
    const name = fresh();
    const other = new BuiltinDnsProvider(t.app.deps.db.prisma, zone, { ipv4: '198.51.100.7' });
    await other.publishSubdomain(name);
    expect(await resolver().resolve4(name)).toEqual(['198.51.100.7']);
    // Publishing with this instance's ingress replaces the other address.
    await dns.publishSubdomain(name);
    expect(await resolver().resolve4(name)).toEqual(['192.0.2.10']);
  });

  it('a re-publish replaces an address pointing elsewhere and refreshes a changed TTL, keeping TXT records', async () => {
    const name = fresh();
    const { prisma } = t.app.deps.db;
    await prisma.dnsRecord.createMany({
      data: [
        { name, type: 'A', value: '192.0.2.10', ttl: 30 },
        { name, type: 'AAAA', value: '2001:db8::99', ttl: 300 },
        { name, type: 'TXT', value: 'kept', ttl: 60 },
      ],
    });
    await dns.publishSubdomain(name);
    const rows = await prisma.dnsRecord.findMany({
      where: { name },
      select: { type: true, value: true, ttl: true },
      orderBy: [{ type: 'asc' }, { value: 'asc' }],
    });
    expect(rows).toEqual([
      { type: 'A', value: '192.0.2.10', ttl: 300 },
      { type: 'AAAA', value: '2001:db8::10', ttl: 300 },
      { type: 'TXT', value: 'kept', ttl: 60 },
    ]);
  });

  it('refuses to publish names outside the zone', async () => {
    await expect(dns.publishSubdomain('clinic.example.com')).rejects.toThrow(/not a name below the zone/);
    await expect(dns.setTxt(zone, ['x'])).rejects.toThrow(/not a name below the zone/);
  });
});

describe('the built-in DNS server over TCP', () => {
  it('answers length-prefixed queries, several per connection, even split across packets', async () => {
    const name = fresh();
    await dns.publishSubdomain(name);
    const a = framed(query(name, 'A'));
    const aaaa = framed(query(name.toUpperCase(), 'AAAA'));
    const missing = framed(query(`missing.${zone}`, 'A'));
    // The first frame byte by byte, the other two in one write.
    const chunks = [...Array.from(a, (byte) => Buffer.from([byte])), Buffer.concat([aaaa, missing])];
    const [first, second, third] = (await tcpExchange(t.dnsPort, chunks, 3)).map(decode);
    expect(first?.answers).toMatchObject([{ type: 'A', data: '192.0.2.10' }]);
    expect(first?.flag_aa).toBe(true);
    expect(second?.answers).toMatchObject([{ type: 'AAAA', data: '2001:db8::10' }]);
    expect(third?.rcode).toBe('NXDOMAIN');
  });

  it('answers a large TXT set in full over TCP (no truncation)', async () => {
    const name = `_acme-challenge.${fresh()}`;
    await dns.setTxt(
      name,
      Array.from({ length: 20 }, (_, i) => `${i}-${'y'.repeat(200)}`),
    );
    const [reply] = await tcpExchange(t.dnsPort, [framed(query(name, 'TXT'))], 1);
    const decoded = decode(reply as Buffer);
    expect(decoded.flag_tc).toBe(false);
    expect(decoded.answers).toHaveLength(20);
  });
});

describe('malformed input', () => {
  it('answers FORMERR to a broken message with a header, drops shorter junk, and keeps serving', async () => {
    const junkHeader = Buffer.from([
      0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    ]);
    const reply = await udpExchange(t.dnsPort, junkHeader);
    expect(reply?.readUInt16BE(0)).toBe(0xbeef);
    expect(rcodeOf(reply as Buffer)).toBe(1); // FORMERR
    expect(await udpExchange(t.dnsPort, Buffer.from([1, 2, 3]), 300)).toBeUndefined();
    // A question whose name is a compression pointer to itself.
    const loop = Buffer.from([0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(rcodeOf((await udpExchange(t.dnsPort, loop)) as Buffer)).toBe(1);
    // Two questions in one query are refused as malformed too.
    const two = Buffer.from(query(`a.${zone}`, 'A'));
    two.writeUInt16BE(2, 4);
    expect(rcodeOf((await udpExchange(t.dnsPort, two)) as Buffer)).toBe(1);
    // A response sent to the server gets no answer (no reflection loops).
    const response = Buffer.from(query(`a.${zone}`, 'A'));
    response.writeUInt16BE(response.readUInt16BE(2) | 0x8000, 2);
    expect(await udpExchange(t.dnsPort, response, 300)).toBeUndefined();
    // A non-QUERY opcode (NOTIFY, 4) is not implemented.
    const notify = Buffer.from(query(`a.${zone}`, 'SOA'));
    notify.writeUInt16BE((4 << 11) | (notify.readUInt16BE(2) & 0x87ff), 2);
    expect(rcodeOf((await udpExchange(t.dnsPort, notify)) as Buffer)).toBe(4);
    const [tcpReply] = await tcpExchange(t.dnsPort, [framed(junkHeader)], 1);
    expect(rcodeOf(tcpReply as Buffer)).toBe(1);
    // Still alive.
    await expect(resolver().resolveSoa(zone)).resolves.toMatchObject({ nsname: `ns1.${zone}` });
  });

  it('survives random garbage over UDP and TCP', async () => {
    for (let i = 0; i < 100; i += 1) {
      const size = 1 + Math.floor(Math.random() * 300);
      const bytes = Buffer.from(Array.from({ length: size }, () => Math.floor(Math.random() * 256)));
      await udpExchange(t.dnsPort, bytes, 10);
    }
    await tcpExchange(t.dnsPort, [Buffer.from([0xff, 0xff, 1, 2, 3])], 0, 200).catch(() => undefined);
    await expect(resolver().resolveSoa(zone)).resolves.toMatchObject({ nsname: `ns1.${zone}` });
  });
});
