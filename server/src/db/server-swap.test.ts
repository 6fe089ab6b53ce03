/**
 * Another PostgreSQL answering at a clinic server's URL while Onramp runs (no restart in between:
 * servers.test.ts covers the restart). A fresh cluster on the same port with the same password
 * has none of the clinic's database: that is another server, not a missing database. Nothing is
 * created there in the clinic's name, nothing is settled as gone, and the real one keeps its rows.
 */
import { describe, expect, it } from 'vitest';
import { afterFile, overTcp } from '../../test/harness.js';
import { clinicWithAdmin } from '../../test/registration-flow.js';
import { impostorDir, recordedServerApp } from '../../test/swap.js';
import { startEmbeddedPostgres } from './embedded.js';
import { withClient } from './sql.js';

describe('another server at a clinic server’s URL while Onramp runs', async () => {
  const { logger, dir, recorded, url, t } = await recordedServerApp('onramp-swap-a-');
  const { provisioning, reconciler, db } = t.app.deps;

  it('is not taken for a missing database: no repair creates one there, no entry is settled as gone', async () => {
    const { clinic } = await clinicWithAdmin(t);
    const data = await provisioning.clients.get(clinic.id);
    await data.patient.create({ data: { firstName: 'Ada', lastName: 'Lovelace' } });
    await provisioning.clients.evict(clinic.id);
    const row = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });

    await recorded.stop();
    const other = await startEmbeddedPostgres({
      dir: impostorDir(dir, 'onramp-swap-b-'),
      logger,
      ephemeral: true,
    });
    afterFile(() => other.stop());
    expect(overTcp(other.url)).toBe(url);
    const onOther = () =>
      withClient(url, async (admin) => ({
        databases: (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [row.databaseName]))
          .rowCount,
        roles: (await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [row.databaseRole])).rowCount,
      }));

    const health = await provisioning.checkClinic(clinic.id);
    expect(health.dbStatus).not.toBe('MISSING');
    expect(health.errors.join(' ')).toMatch(/another server/);
    await expect(provisioning.repairClinic(clinic.id)).rejects.toThrow(/another server/);
    expect(await onOther()).toEqual({ databases: 0, roles: 0 });
    // A deletion now must not settle the clinic's database as "did not exist".
    await provisioning.deleteClinic(clinic.id).catch(() => {});
    expect(await db.prisma.clinicObject.count({ where: { clinicId: clinic.id, state: 'DROPPED' } })).toBe(0);
    await reconciler.reconcile();
    expect(await db.prisma.clinicObject.count({ where: { clinicId: clinic.id, state: 'DROPPED' } })).toBe(0);
    expect(await onOther()).toEqual({ databases: 0, roles: 0 });
    await other.stop();

    // The recorded server back: the clinic's rows are all there.
    const back = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    afterFile(() => back.stop());
    const rows = await withClient(url.replace(/\/[^/?]*(\?|$)/, `/${row.databaseName}$1`), (client) =>
      client.query('SELECT last_name FROM patients'),
    ).catch(() => null);
    expect(rows?.rows).toEqual([{ last_name: 'Lovelace' }]);
  }, 180_000);
});
