/** Talking to the built-in DNS server from tests: node's resolver, and raw UDP/TCP messages. */
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import dnsPacket, { type Packet } from 'dns-packet';

/** node's own stub resolver (c-ares), asking only the server on 127.0.0.1:`port`. */
export function resolverFor(port: number): Resolver {
  const resolver = new Resolver({ timeout: 2_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  return resolver;
}

let nextId = 1;

export function query(name: string, type: string, options: { edns?: number } = {}): Buffer {
  nextId = (nextId % 65_000) + 1;
  return dnsPacket.encode({
    id: nextId,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals:
      options.edns === undefined
        ? []
        : [{ name: '.', type: 'OPT', udpPayloadSize: options.edns, flags: 0 } as never],
  });
}

/** Sends one datagram, resolves with the reply, or undefined when none came within `timeoutMs`. */
export function udpExchange(port: number, message: Buffer, timeoutMs = 1_000): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    socket.once('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.send(message, port, '127.0.0.1');
  });
}

/**
 * Writes `chunks` to one TCP connection (as given: frames may be split or joined) and resolves
 * with the `expected` length-prefixed replies, decoded from the stream.
 */
export function tcpExchange(
  port: number,
  chunks: Buffer[],
  expected: number,
  timeoutMs = 2_000,
): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    const replies: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`got ${replies.length} of ${expected} TCP replies`));
    }, timeoutMs);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 2 && received.length >= 2 + received.readUInt16BE(0)) {
        const length = received.readUInt16BE(0);
        replies.push(received.subarray(2, 2 + length));
        received = received.subarray(2 + length);
      }
      if (replies.length >= expected) {
        clearTimeout(timer);
        socket.destroy();
        resolve(replies);
      }
    });
    socket.on('connect', async () => {
      for (const chunk of chunks) {
        socket.write(chunk);
        await new Promise((done) => setTimeout(done, 5));
      }
    });
  });
}

export function framed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length);
  return Buffer.concat([prefix, message]);
}

export const decode = (message: Buffer): Packet & { rcode?: string; flag_aa?: boolean; flag_tc?: boolean } =>
  dnsPacket.decode(message) as never;

/** The rcode (low 4 bits of the flags) of a raw reply. */
export const rcodeOf = (message: Buffer): number => message.readUInt16BE(2) & 0xf;
