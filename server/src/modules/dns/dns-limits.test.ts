/**
 * The built-in DNS server under abuse, over real UDP and TCP: a flood of random in-zone names
 * costs the central database nothing (the zone is cached, on its own small pool), a record
 * published or removed through another instance is answered at once (the cache is invalidated
 * by PostgreSQL NOTIFY), queries waiting on the database are bounded, TCP connections are capped
 * per address and in total, and every TCP connection has an absolute deadline (slowloris).
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { decode, framed, query, rcodeOf, tcpExchange, udpExchange } from '../../../test/dns-client.js';
import { createTestDatabase, startTestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';
import { ZONE_CHANGED_CHANNEL, ZONE_CHANGED_EVENT } from './zone-cache.js';

const QUIET = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };

/** `n` A queries at once, each on its own UDP socket; resolves with the replies (undefined: none). */
const udpBurst = (port: number, names: string[], timeoutMs = 2_000) =>
  Promise.all(names.map((name) => udpExchange(port, query(name, 'A'), timeoutMs)));

const randomName = (zone: string) => `${randomBytes(6).toString('hex')}.${zone}`;

describe('the zone cache', async () => {
  const databaseUrl = await createTestDatabase();
  const a = await startTestApp({ ...QUIET, DATABASE_URL: databaseUrl });
  const b = await startTestApp({ ...QUIET, DATABASE_URL: databaseUrl });
  const zone = a.config.baseDomain;

  it('a flood of random in-zone names reaches the database a handful of times at most', async () => {
    const commits = async () =>
      withClient(databaseUrl, async (client) => {
        const { rows } = await client.query<{ n: string }>(
          'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()',
        );
        return Number(rows[0]?.n);
      });
    await udpBurst(a.dnsPort, [randomName(zone)]); // warm
    await new Promise((done) => setTimeout(done, 1_200)); // statistics are flushed about every second
    const before = await commits();
    let answered = 0;
    for (let round = 0; round < 10; round += 1) {
      const replies = await udpBurst(
        a.dnsPort,
        Array.from({ length: 100 }, () => randomName(zone)),
      );
      answered += replies.filter((reply) => reply && rcodeOf(reply) === 3).length; // NXDOMAIN
    }
    expect(answered).toBe(1_000);
    await new Promise((done) => setTimeout(done, 1_200));
    const spent = (await commits()) - before;
    // Without the cache, each query was one to two statements: 1,000 to 2,000 transactions.
    // What remains is the apps' own background work (job polling, LISTEN keep-alives).
    expect(spent).toBeLessThan(200);
  });

  it('reads the zone on its own small pool, not the owner connections', async () => {
    const { rows } = await withClient(databaseUrl, (client) =>
      client.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'onramp-dns'",
      ),
    );
    // Each app's pool holds at most two connections (and a LISTEN connection of its own).
    expect(rows[0]?.n).toBeGreaterThan(0);
    expect(rows[0]?.n).toBeLessThanOrEqual(2 * 3);
  });

  it('a clinic registered through instance A resolves at once on instance B, and stops resolving when deleted', async () => {
    const clinicName = `Cache ${randomBytes(3).toString('hex')}`;
    const fqdn = `${clinicName.toLowerCase().replace(' ', '-')}.${zone}`;
    // B has the zone cached without the name.
    expect(rcodeOf((await udpExchange(b.dnsPort, query(fqdn, 'A'))) as Buffer)).toBe(3);
    const registered = await registerClinic(a, { clinicName });
    expect(registered.result?.clinic?.subdomain).toBe(fqdn.split('.')[0]);
    await expect
      .poll(async () => decode((await udpExchange(b.dnsPort, query(fqdn, 'A'))) as Buffer).answers?.[0], {
        timeout: 5_000,
      })
      .toMatchObject({ type: 'A', data: '127.0.0.1' });
    const deleted = await a.gql(
      'mutation ($id: ID!) { deleteClinic(clinicId: $id) { __typename } }',
      { id: registered.result?.clinic?.id },
      await a.superAdmin(),
    );
    expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
    await expect
      .poll(async () => rcodeOf((await udpExchange(b.dnsPort, query(fqdn, 'A'))) as Buffer), {
        timeout: 5_000,
      })
      .toBe(3);
  });
});

describe('bounded queries and TCP connections', async () => {
  const t = await startTestApp(QUIET, {
    dnsLimits: {
      maxInFlight: 3,
      maxTcpConnections: 20,
      maxTcpConnectionsPerAddress: 4,
      tcpIdleTimeoutMs: 1_500,
      tcpDeadlineMs: 3_000,
    },
  });
  const zone = t.config.baseDomain;

  it('while the zone cannot be read, at most maxInFlight queries wait; the others are dropped', async () => {
    const name = randomName(zone);
    await withClient(t.app.deps.db.centralUrl, async (locker) => {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE dns_records IN ACCESS EXCLUSIVE MODE');
      // Stale cache: the reload it needs now waits for the lock. A probe that gets no answer
      // proves it (before the notification lands, answers still come from memory).
      let probes = 0;
      for (;;) {
        // What the trigger on dns_records sends when a row changes.
        await withClient(t.app.deps.db.centralUrl, (other) =>
          other.query('SELECT pg_notify($1, $2)', [
            ZONE_CHANGED_CHANNEL,
            JSON.stringify({ type: ZONE_CHANGED_EVENT }),
          ]),
        );
        probes += 1;
        if ((await udpExchange(t.dnsPort, query(name, 'A'), 300)) === undefined) break;
        if (probes > 20) throw new Error('the cache never went stale');
      }
      const burst = udpBurst(
        t.dnsPort,
        Array.from({ length: 20 }, () => name),
        4_000,
      );
      await new Promise((done) => setTimeout(done, 500));
      await locker.query('COMMIT');
      const replies = await burst;
      // The probe holds one of the three slots; two of the twenty got in.
      expect(replies.filter((reply) => reply !== undefined)).toHaveLength(2);
    });
    // Afterwards everything is answered again.
    expect(
      (
        await udpBurst(
          t.dnsPort,
          Array.from({ length: 20 }, () => name),
        )
      ).every(Boolean),
    ).toBe(true);
  });

  /** Opens a TCP connection from `localAddress`; resolves once connected, with a closed flag. */
  const open = (localAddress: string) =>
    new Promise<{ socket: Socket; closed: () => boolean }>((resolve, reject) => {
      let closed = false;
      const socket = connect({ port: t.dnsPort, host: '127.0.0.1', localAddress });
      socket.on('close', () => {
        closed = true;
      });
      socket.on('error', () => {});
      socket.once('connect', () => resolve({ socket, closed: () => closed }));
      socket.once('error', reject);
    });

  it('caps TCP connections per address: 300 from one address leave room for everyone else', async () => {
    const attacker = await Promise.all(Array.from({ length: 300 }, () => open('127.0.0.2')));
    try {
      await expect.poll(() => attacker.filter((c) => !c.closed()).length).toBe(4);
      // Another address still gets answers over TCP.
      const [reply] = await tcpExchange(t.dnsPort, [framed(query(zone, 'SOA'))], 1);
      expect(rcodeOf(reply as Buffer)).toBe(0);
    } finally {
      for (const connection of attacker) connection.socket.destroy();
    }
  });

  it('caps TCP connections in total', async () => {
    await new Promise((done) => setTimeout(done, 500)); // the previous test's sockets are gone
    const addresses = Array.from({ length: 10 }, (_, i) => `127.0.1.${i + 1}`);
    const connections = await Promise.all(
      addresses.flatMap((address) => Array.from({ length: 4 }, () => open(address))),
    );
    try {
      await expect.poll(() => connections.filter((c) => !c.closed()).length).toBe(20);
    } finally {
      for (const connection of connections) connection.socket.destroy();
    }
  });

  it('closes a connection that trickles a byte at a time at its absolute deadline (slowloris)', async () => {
    await new Promise((done) => setTimeout(done, 500)); // the previous test's sockets are gone
    const connection = await open('127.0.0.3');
    // Served first: the connection was accepted, not refused by a cap.
    const answered = new Promise<Buffer | undefined>((resolve) => {
      connection.socket.once('data', resolve);
      connection.socket.once('close', () => resolve(undefined));
    });
    connection.socket.write(framed(query(zone, 'SOA')));
    const first = await answered;
    expect(first && rcodeOf(first.subarray(2))).toBe(0);
    // Then a 65,535-byte frame, one byte every 200 ms: never idle for the 1.5 s idle timeout.
    connection.socket.write(Buffer.from([0xff, 0xff]));
    const startedAt = Date.now();
    while (!connection.closed() && Date.now() - startedAt < 8_000) {
      connection.socket.write(Buffer.from([0]));
      await new Promise((done) => setTimeout(done, 200));
    }
    expect(connection.closed()).toBe(true);
    connection.socket.destroy();
  });

  it('keeps answering well-behaved TCP clients', async () => {
    const replies = await tcpExchange(
      t.dnsPort,
      [framed(query(zone, 'SOA')), framed(query(randomName(zone), 'A'))],
      2,
    );
    expect(replies.map((reply) => rcodeOf(reply))).toEqual([expect.any(Number), 3]);
  });
});
