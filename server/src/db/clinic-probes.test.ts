/**
 * The long-lived connections to clinic database servers are probed by PostgreSQL as the central
 * ones are (decision 092): the warm admin sessions (claims, clones, grants, moves) and each
 * clinic's own pool, whose transactions hold locks in the clinic's database. A host that vanished
 * without closing them (power loss, partition) no longer holds those locks for TCP's 2 hours.
 */
import { describe, expect, it } from 'vitest';
import { overTcp, startExtraPostgres, startTestApp } from '../../test/harness.js';
import { createClinic } from '../../test/registration-flow.js';
import { PEER_PROBES } from './sql.js';

const PROBED = {
  tcp_keepalives_idle: String(PEER_PROBES.idleSeconds),
  tcp_keepalives_interval: String(PEER_PROBES.intervalSeconds),
  tcp_keepalives_count: String(PEER_PROBES.count),
  tcp_user_timeout: String(PEER_PROBES.userTimeoutMs),
};
const SETTINGS = `SELECT name, setting FROM pg_settings
  WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count', 'tcp_user_timeout')`;
const asObject = (rows: { name: string; setting: string }[]) =>
  Object.fromEntries(rows.map((row) => [row.name, row.setting]));

describe('connections to a clinic database server', async () => {
  const server = await startExtraPostgres();
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_DATABASE_SERVERS: overTcp(server.url) });
  const { db, provisioning } = t.app.deps;

  it('are probed by PostgreSQL: the admin sessions and a clinic’s own pool', async () => {
    const [clinicServer] = [...db.servers.byId.values()];
    if (!clinicServer) throw new Error('no clinic server attached');
    const admin = await clinicServer.admin.query<{ name: string; setting: string }>(SETTINGS);
    expect(asObject(admin.rows)).toEqual(PROBED);

    const { clinicId } = await createClinic(t);
    const clinic = await provisioning.clients.get(clinicId);
    expect(asObject(await clinic.$queryRawUnsafe<{ name: string; setting: string }[]>(SETTINGS))).toEqual(
      PROBED,
    );
  });
});
