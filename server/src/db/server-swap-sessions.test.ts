/**
 * Another cluster at a clinic server's address that holds a database of the clinic's name (a
 * restored copy, a promoted replica): a clinic's upgrade, the UPGRADE run a rollout drives, opens
 * one-off sessions in the clinic's database rather than the admin pool's, and those are checked
 * too as they open (docs/decisions/097). Nothing is migrated or granted on the other cluster, and
 * the server is taken out of the registry as decision 086 does.
 */
import { describe, expect, it } from 'vitest';
import { afterFile, overTcp } from '../../test/harness.js';
import { createClinic } from '../../test/registration-flow.js';
import { impostorDir, inventory, recordedServerApp } from '../../test/swap.js';
import { runUpgrade } from '../../test/upgrade.js';
import { startEmbeddedPostgres } from './embedded.js';
import { migrate } from './migrator.js';
import { ServerIdentityError } from './servers.js';
import { databaseUrl, quoteIdent, withClient } from './sql.js';

describe('a clinic upgrade aimed at a server whose address answers as another cluster', async () => {
  const { logger, dir, recorded, url, t } = await recordedServerApp('onramp-swap-sessions-a-');
  const { db } = t.app.deps;

  it('touches nothing there: the session is refused as it opens, and the server distrusted', async () => {
    const { clinicId } = await createClinic(t);
    const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const server = db.servers.byId.get(clinic.databaseServerId);
    if (!server) throw new Error('the clinic server is not attached');

    await recorded.stop();
    const other = await startEmbeddedPostgres({
      dir: impostorDir(dir, 'onramp-swap-sessions-b-'),
      logger,
      ephemeral: true,
    });
    afterFile(() => other.stop());
    expect(overTcp(other.url)).toBe(url);
    // A copy of the clinic's database, at its schema, on the other cluster.
    await withClient(url, (admin) => admin.query(`CREATE DATABASE ${quoteIdent(clinic.databaseName)}`));
    const copy = databaseUrl(url, clinic.databaseName);
    await withClient(copy, (client) => migrate(client, db.clinicMigrations));
    const onOther = async () => ({
      ...(await inventory(url)),
      copy: await withClient(copy, async (client) => ({
        migrations: (await client.query('SELECT migration_name FROM "_prisma_migrations" ORDER BY 1')).rows,
        invoices: (await client.query("SELECT to_regclass('invoices') AS t")).rows[0]?.t ?? null,
      })),
    });
    const before = await onOther();

    const result = await runUpgrade(
      t.app,
      clinicId,
      server,
      '20991231000000_invoices',
      'CREATE TABLE "invoices" ("id" INTEGER PRIMARY KEY);',
    );
    if (result.ok) throw new Error('the upgrade ran on the other cluster');
    expect(result.failedStep).toBe('migrate_database');
    expect(result.error).toBeInstanceOf(ServerIdentityError);

    // Nothing migrated, granted or created there; the clinic keeps its recorded version.
    expect(await onOther()).toEqual(before);
    expect(before.copy.invoices).toBeNull();
    expect((await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } })).schemaVersion).toBe(
      clinic.schemaVersion,
    );
    // Taken out of the registry, as an admin session's refusal does (decision 086).
    expect(db.servers.byId.has(server.id)).toBe(false);
    expect(db.servers.unreachable.get(server.id)).toMatchObject({ identityMismatch: true });
  }, 180_000);
});
