/**
 * The one door for destructive SQL (docs/decisions/040). Every `DROP DATABASE` and `DROP ROLE` of
 * Onramp is here, and each call names the recorded decision it acts on; a test
 * (drop.test.ts) fails when such a statement appears anywhere else in server/src.
 *
 * - `purge`: a ledger entry whose retention ended (quarantined, see provisioning/ledger.ts);
 * - `undo`: a saga undoing what its own live run created and recorded in the ledger;
 * - `spare` and `template`: a warm-pool spare or a clinic template build, clones of the template
 *   that never held clinic data, recognised by their reserved prefixes and nothing else.
 */
import type pg from 'pg';
import type { Logger } from '../logger.js';
import { quoteIdent, withClient } from './sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export type DropDecision =
  | { kind: 'purge'; entryId: string }
  | { kind: 'undo'; runId: string }
  | { kind: 'spare' }
  /** `prefix`: the template family's (clinic-template.ts; tests build their own). */
  | { kind: 'template'; prefix: string };

/** Prefix of the warm pool's spares, the only databases a `spare` decision may drop. */
export const SPARE_PREFIX = 'onramp_spare_';

/** Every clinic database and role starts with this; no spare or template decision reaches them. */
const CLINIC_PREFIX = 'clinic_';

export interface DropTarget {
  database?: string | null;
  role?: string | null;
}

/**
 * Drops the database (closing its connections) and then the role; missing ones are fine.
 * `on` is an admin session or an admin URL.
 * @throws when the decision does not allow the target (a spare decision on a clinic database).
 */
export async function dropObjects(
  on: Queryable | string,
  target: DropTarget,
  decision: DropDecision,
  logger?: Logger,
): Promise<void> {
  if (decision.kind === 'spare' || decision.kind === 'template') {
    const prefix = decision.kind === 'spare' ? SPARE_PREFIX : decision.prefix;
    const name = target.database ?? '';
    if (target.role || !prefix || !name.startsWith(prefix) || name.startsWith(CLINIC_PREFIX))
      throw new Error(`a ${decision.kind} decision drops only databases named ${prefix}…`);
  }
  const work = async (admin: Queryable) => {
    if (target.database)
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(target.database)} WITH (FORCE)`);
    if (target.role) {
      // Its grants lived in the dropped database; DROP OWNED clears any left in this one, which
      // would otherwise block DROP ROLE.
      await admin.query(`DROP OWNED BY ${quoteIdent(target.role)}`).catch(ignoreMissingRole);
      await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(target.role)}`);
    }
  };
  if (typeof on === 'string') await withClient(on, work);
  else await work(on);
  if (decision.kind === 'purge' || decision.kind === 'undo')
    logger?.warn({ ...target, decision }, 'dropped a clinic database or role');
}

function ignoreMissingRole(error: unknown): void {
  if ((error as { code?: string }).code !== '42704') throw error; // undefined_object
}
