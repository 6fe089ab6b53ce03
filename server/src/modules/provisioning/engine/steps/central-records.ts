import { transaction } from '../../../../db/raw.js';
import { Prisma } from '../../../../generated/central/client.js';
import type { Step } from '../runner.js';
import { clinicRecord, type ProvisionState, type StepDeps } from '../state.js';
import type { TransactionHook } from './hooks.js';

/**
 * The company and its PROVISIONING clinic, in one transaction with what `hook` adds (a
 * registration's admin user). Undone by deleting the company, which cascades to the clinic, its
 * users and their tokens. The step's record is written in the same transaction, on pg beside
 * Prisma's engine (decision 074).
 */
export function centralRecordsStep<S extends ProvisionState>(
  deps: Pick<StepDeps, 'prisma'>,
  hook: TransactionHook<S> = {},
): Step<S> {
  return {
    name: 'central_records',
    async run(state, context) {
      const clinic = clinicRecord(state);
      await hook.prepare?.(state);
      await transaction(deps.prisma, async (tx) => {
        // The company and its clinic in one statement: the clinic needs only the company's id.
        await tx.execute(Prisma.sql`
          WITH company AS (INSERT INTO companies (name) VALUES (${state.companyName}::text) RETURNING id)
          INSERT INTO clinics
            (id, company_id, name, country, subdomain, status, database_name, database_server_id, database_role)
          SELECT ${clinic.id}::uuid, company.id, ${clinic.name}::text, ${clinic.country}::text,
            ${clinic.subdomain}::text, ${clinic.status}::"ClinicStatus", ${clinic.databaseName}::text,
            ${clinic.databaseServerId}::uuid, ${clinic.databaseRole}::text
          FROM company`);
        await hook.run?.(tx, state);
        await context.record(tx);
      });
      state.createdInRun = true;
      return undefined;
    },
    async undo(state) {
      await transaction(deps.prisma, async (tx) => {
        await hook.undo?.(tx, state);
        await tx.execute(
          Prisma.sql`DELETE FROM companies WHERE id = (SELECT company_id FROM clinics WHERE id = ${state.clinicId}::uuid)`,
        );
      });
    },
  };
}
