/**
 * The built-in authoritative DNS server of BASE_DOMAIN, over UDP and TCP on one port.
 *
 * Records come from a cache of the zone (zone-cache.ts), read on a small pool of its own and
 * invalidated on every instance when a record changes, so a flood of queries never reaches the
 * central database nor competes with GraphQL for its connections. Abuse is bounded: queries in
 * flight (the excess is dropped over UDP, answered SERVFAIL over TCP), TCP connections in total
 * and per client address, and each TCP connection's lifetime (an absolute deadline besides the
 * idle timeout, so trickling a byte at a time cannot keep it open).
 *
 * Malformed input is answered with FORMERR when it carries at least a header, and dropped
 * otherwise; nothing a client sends can throw out of a socket handler.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import dnsPacket, { type Answer, type Packet, type Question } from 'dns-packet';
import type { Logger } from '../../logger.js';
import { type DnsRecord, inZone, normaliseName } from './provider.js';

/** Where the server reads the zone's records from (the zone cache). */
export interface ZoneData {
  recordsOf(name: string): Promise<DnsRecord[]>;
  nameExists(name: string): Promise<boolean>;
  /** Called by listen() before the sockets open. */
  start?(): Promise<void>;
  /** Called by close() once the sockets are closed. */
  close?(): Promise<void>;
}

/** What bounds the server's work; every field has a default. */
export interface DnsLimits {
  /** Queries answered at once; more are dropped (UDP) or answered SERVFAIL (TCP). @default 128 */
  maxInFlight?: number;
  /** TCP connections open at once; more are closed on arrival. @default 128 */
  maxTcpConnections?: number;
  /** TCP connections open at once from one client address. @default 8 */
  maxTcpConnectionsPerAddress?: number;
  /** A TCP connection idle this long is closed (RFC 7766 §6.2.3). @default 10000 */
  tcpIdleTimeoutMs?: number;
  /** A TCP connection is closed this long after it opened, busy or not. @default 30000 */
  tcpDeadlineMs?: number;
}

export interface DnsServerOptions {
  /** The zone answered authoritatively (BASE_DOMAIN). */
  zone: string;
  host: string;
  /** 0 picks a free port, the same for UDP and TCP. */
  port: number;
  data: ZoneData;
  logger: Logger;
  limits?: DnsLimits;
}

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const QR = 1 << 15;
const AA = dnsPacket.AUTHORITATIVE_ANSWER;
const TC = dnsPacket.TRUNCATED_RESPONSE;
const RD = dnsPacket.RECURSION_DESIRED;
/** Without EDNS a UDP answer may not exceed 512 bytes (RFC 1035 §4.2.1). */
const CLASSIC_UDP_LIMIT = 512;
/** The largest UDP answer we send even when a client offers more (DNS flag day 2020). */
const EDNS_UDP_LIMIT = 1232;
/** Negative answers are cached for this long (the SOA minimum, RFC 2308). */
const NEGATIVE_TTL = 60;
const HEADER_BYTES = 12;

export class DnsServer {
  private udp: UdpSocket | undefined;
  private tcp: TcpServer | undefined;
  private readonly connections = new Set<TcpSocket>();
  private readonly perAddress = new Map<string, number>();
  private inFlight = 0;
  private boundPort: number | undefined;
  private readonly limits: Required<DnsLimits>;

  constructor(private readonly options: DnsServerOptions) {
    this.limits = {
      maxInFlight: 128,
      maxTcpConnections: 128,
      maxTcpConnectionsPerAddress: 8,
      tcpIdleTimeoutMs: 10_000,
      tcpDeadlineMs: 30_000,
      ...options.limits,
    };
  }

  /** The port both transports listen on, once listening. */
  get port(): number | undefined {
    return this.boundPort;
  }

  /** Binds UDP and TCP on the same port; with port 0, retries until a free one fits both. */
  async listen(): Promise<number> {
    const { host, port } = this.options;
    await this.options.data.start?.();
    for (let attempt = 1; ; attempt += 1) {
      const udp = await this.bindUdp(host, port);
      const udpPort = udp.address().port;
      try {
        this.tcp = await this.bindTcp(host, udpPort);
      } catch (error) {
        udp.close();
        const inUse = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (port === 0 && inUse && attempt < 20) continue;
        throw error;
      }
      this.udp = udp;
      this.boundPort = udpPort;
      return udpPort;
    }
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = undefined;
    this.tcp = undefined;
    for (const socket of this.connections) socket.destroy();
    await Promise.all([
      udp && new Promise<void>((done) => udp.close(() => done())),
      tcp && new Promise<void>((done) => tcp.close(() => done())),
    ]);
    await this.options.data.close?.();
  }

  /**
   * The answer to one DNS message, or undefined when it deserves none (a response, fewer bytes
   * than a header). `udpLimit` undefined means TCP (no truncation).
   */
  async answer(message: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    if (message.length < HEADER_BYTES) return undefined;
    const id = message.readUInt16BE(0);
    const flags = message.readUInt16BE(2);
    if (flags & QR) return undefined; // never answer answers: two servers could loop forever
    const opcode = (flags >> 11) & 0xf;
    if (opcode !== 0) return headerOnly(id, flags, RCODE.NOTIMP);
    let query: Packet;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return headerOnly(id, flags, RCODE.FORMERR);
    }
    const question = query.questions?.[0];
    if (!question || query.questions?.length !== 1) return headerOnly(id, flags, RCODE.FORMERR);
    const opt = query.additionals?.find((record) => record.type === 'OPT');
    const response = await this.resolve(question).catch((error: unknown) => {
      this.options.logger.warn({ err: error }, 'DNS lookup failed; answering SERVFAIL');
      return { rcode: RCODE.SERVFAIL, authoritative: false, answers: [], authorities: [] };
    });
    const packet: Packet = {
      id,
      type: 'response',
      flags: (flags & RD) | (response.authoritative ? AA : 0) | response.rcode,
      questions: [question],
      answers: response.answers,
      authorities: response.authorities,
      additionals: opt
        ? [{ name: '.', type: 'OPT', udpPayloadSize: EDNS_UDP_LIMIT, flags: 0 } as Answer]
        : [],
    };
    const encoded = dnsPacket.encode(packet);
    if (transport === 'tcp') return encoded;
    const offered = opt && 'udpPayloadSize' in opt ? (opt.udpPayloadSize ?? 0) : 0;
    const limit = Math.min(Math.max(offered, CLASSIC_UDP_LIMIT), EDNS_UDP_LIMIT);
    if (encoded.length <= limit) return encoded;
    // Too big for this datagram: say so (TC) and let the client ask again over TCP.
    return dnsPacket.encode({
      ...packet,
      flags: (packet.flags ?? 0) | TC,
      answers: [],
      authorities: [],
    });
  }

  private async resolve(question: Question): Promise<{
    rcode: number;
    authoritative: boolean;
    answers: Answer[];
    authorities: Answer[];
  }> {
    const { zone, data } = this.options;
    const name = normaliseName(question.name);
    const qclass = question.class ?? 'IN';
    if (!inZone(name, zone) || (qclass !== 'IN' && qclass !== 'ANY')) {
      return { rcode: RCODE.REFUSED, authoritative: false, answers: [], authorities: [] };
    }
    // dns-packet decodes type 255 as 'ANY', which its typings omit.
    const qtype: string = question.type;
    // Answers carry the question's spelling: resolvers using 0x20 case randomisation compare it.
    const owner = question.name.replace(/\.$/, '');
    const answers: Answer[] = [];
    if (name === zone) {
      if (qtype === 'SOA' || qtype === 'ANY') answers.push(this.soa(owner));
      if (qtype === 'NS' || qtype === 'ANY')
        answers.push({ name: owner, type: 'NS', ttl: 3600, data: this.nameserver() });
    }
    const records = await data.recordsOf(name);
    const cname = records.find((record) => record.type === 'CNAME');
    const matching =
      cname && qtype !== 'CNAME' && qtype !== 'ANY'
        ? [cname] // the resolver follows the alias
        : records.filter((record) => qtype === 'ANY' || record.type === qtype);
    answers.push(...matching.map((record) => toAnswer(owner, record)));
    if (answers.length > 0) return { rcode: RCODE.NOERROR, authoritative: true, answers, authorities: [] };
    const exists = name === zone || records.length > 0 || (await data.nameExists(name));
    return {
      rcode: exists ? RCODE.NOERROR : RCODE.NXDOMAIN,
      authoritative: true,
      answers: [],
      authorities: [this.soa(zone)],
    };
  }

  private nameserver(): string {
    return `ns1.${this.options.zone}`;
  }

  private soa(owner: string): Answer {
    const { zone } = this.options;
    return {
      name: owner,
      type: 'SOA',
      ttl: NEGATIVE_TTL,
      data: {
        mname: this.nameserver(),
        rname: `hostmaster.${zone}`,
        // Records change without a zone version; with no zone transfers (secondaries) to
        // drive, the clock is a serial that only grows.
        serial: Math.floor(Date.now() / 1000) >>> 0,
        refresh: 3600,
        retry: 600,
        expire: 604_800,
        minimum: NEGATIVE_TTL,
      },
    };
  }

  private bindUdp(host: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        socket.on('error', (error) => this.options.logger.warn({ err: error }, 'DNS UDP socket error'));
        socket.on('message', (message, remote) => {
          if (!this.admit()) return;
          this.answer(message, 'udp')
            .then((reply) => {
              if (reply && this.udp === socket) socket.send(reply, remote.port, remote.address);
            })
            .catch((error: unknown) => this.options.logger.warn({ err: error }, 'DNS UDP query failed'))
            .finally(() => this.release());
        });
        resolve(socket);
      });
    });
  }

  private bindTcp(host: string, port: number): Promise<TcpServer> {
    return new Promise((resolve, reject) => {
      const server = createServer((socket) => this.serveTcp(socket));
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        server.on('error', (error) => this.options.logger.warn({ err: error }, 'DNS TCP server error'));
        resolve(server);
      });
    });
  }

  /** RFC 1035 §4.2.2 framing: each message is preceded by its length as two bytes. */
  private serveTcp(socket: TcpSocket): void {
    const address = socket.remoteAddress ?? 'unknown';
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (
      this.connections.size >= this.limits.maxTcpConnections ||
      fromAddress >= this.limits.maxTcpConnectionsPerAddress
    ) {
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    this.connections.add(socket);
    this.perAddress.set(address, fromAddress + 1);
    socket.setTimeout(this.limits.tcpIdleTimeoutMs, () => socket.destroy());
    // Absolute: a client sending a byte now and then resets the idle timer, never this one.
    const deadline = setTimeout(() => socket.destroy(), this.limits.tcpDeadlineMs);
    deadline.unref();
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      clearTimeout(deadline);
      this.connections.delete(socket);
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    });
    let pending = Buffer.alloc(0);
    // Answers leave in the order queries arrived, one at a time per connection.
    let queue = Promise.resolve();
    const send = (reply: Buffer) => {
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16BE(reply.length);
      if (!socket.destroyed) socket.write(Buffer.concat([prefix, reply]));
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const message = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        queue = queue.then(async () => {
          if (!this.admit()) {
            // Busy: say so at once rather than leave the client waiting on this stream.
            if (message.length >= HEADER_BYTES) {
              send(headerOnly(message.readUInt16BE(0), message.readUInt16BE(2), RCODE.SERVFAIL));
            } else socket.destroy();
            return;
          }
          try {
            const reply = await this.answer(Buffer.from(message), 'tcp');
            if (!reply) {
              socket.destroy(); // nothing sensible to say; a stream out of step cannot recover
              return;
            }
            send(reply);
          } catch (error) {
            this.options.logger.warn({ err: error }, 'DNS TCP query failed');
            socket.destroy();
          } finally {
            this.release();
          }
        });
      }
    });
  }

  private admit(): boolean {
    if (this.inFlight >= this.limits.maxInFlight) return false;
    this.inFlight += 1;
    return true;
  }

  private release(): void {
    this.inFlight -= 1;
  }
}

function toAnswer(owner: string, record: DnsRecord): Answer {
  switch (record.type) {
    case 'TXT':
      return { name: owner, type: 'TXT', ttl: record.ttl, data: txtStrings(record.value) };
    case 'A':
      return { name: owner, type: 'A', ttl: record.ttl, data: record.value };
    case 'AAAA':
      return { name: owner, type: 'AAAA', ttl: record.ttl, data: record.value };
    case 'CNAME':
      return { name: owner, type: 'CNAME', ttl: record.ttl, data: record.value };
  }
}

/** A TXT value as the character-strings of at most 255 bytes that carry it (RFC 1035 §3.3.14). */
function txtStrings(value: string): Buffer[] {
  const bytes = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += 255) parts.push(bytes.subarray(offset, offset + 255));
  return parts.length > 0 ? parts : [Buffer.alloc(0)];
}

/** A response with no sections: for messages we cannot or will not parse. */
function headerOnly(id: number, queryFlags: number, rcode: number): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  // QR, the query's opcode and RD, the rcode; all counts zero.
  header.writeUInt16BE(QR | (queryFlags & 0x7800) | (queryFlags & RD) | rcode, 2);
  return header;
}
