/**
 * `pnpm clinics:servers`: lists the recorded clinic database servers (held, reachable or not, and
 * why). `pnpm clinics:servers accept <name|id>`: the operator's decision to use a held server
 * (docs/decisions/090), as acceptDatabaseServer does: the hold cleared centrally, so every
 * instance uses it at its next refresh; audited with the shell's user. Exits 1 when the server is
 * unknown or not held.
 */
import { userInfo } from 'node:os';
import { runOperatorCommand } from './operator.js';

const [command, target] = process.argv.slice(2);
if (!(command === undefined || (command === 'accept' && target))) {
  console.error('usage: pnpm clinics:servers            (lists the recorded servers)');
  console.error('       pnpm clinics:servers accept <name|id>  (uses a held server from now on)');
  process.exit(2);
}
await runOperatorCommand(async ({ db, provisioning }) => {
  if (command === 'accept' && target) {
    const by = `pnpm clinics:servers accept, by ${userInfo().username}`;
    const server = await provisioning.acceptServer(target, { userId: null, by });
    console.log(`${server.name} accepted: clinics may be placed on it from now on`);
  } else {
    const clinics = await db.prisma.clinic.groupBy({ by: ['databaseServerId'], _count: { _all: true } });
    const load = new Map(clinics.map((row) => [row.databaseServerId, row._count._all]));
    for (const row of await db.prisma.databaseServer.findMany({ orderBy: { createdAt: 'asc' } })) {
      const state = row.heldReason
        ? row.heldReason
        : db.servers.byId.has(row.id)
          ? 'reachable'
          : `unreachable: ${db.servers.unreachable.get(row.id)?.reason ?? row.lastError ?? 'not reached yet'}`;
      console.log(`${row.name}\t${row.id}\t${load.get(row.id) ?? 0} clinics\t${state}`);
    }
  }
});
