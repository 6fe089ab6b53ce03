/**
 * Ending every session of a user so that no sign-in racing the end keeps one (docs/decisions/089).
 * A sign-in reads the user's `session_epoch` with the credentials it checks, and writes its
 * session only while the epoch is unchanged, locking the user's row in that statement
 * (auth/service.ts `issue`). Ending the sessions bumps the epoch first, in a statement of its
 * own, then ends them in the next one:
 * - a sign-in whose write comes after the bump finds another epoch (or waits for the bump's
 *   commit and then finds it) and writes nothing;
 * - a sign-in whose write locked the row first makes the bump wait for its commit, and the
 *   statement that ends the sessions, which starts after, sees the new session and ends it.
 * One statement could not do both: it sees the rows committed before it started, not those of a
 * sign-in it waited for.
 */
import type { Prisma } from '../../generated/central/client.js';

/**
 * Ends every live session of `userId`, in the caller's transaction, but the sign-in (session
 * family) of `keep` when given. `IS DISTINCT FROM`: an unknown or null `keep` keeps nothing.
 * The callers tell every instance afterwards (`sessionsEnded`).
 * @returns how many ended.
 */
export async function endSessions(
  tx: Prisma.TransactionClient,
  userId: string,
  keep: string | null = null,
): Promise<number> {
  await tx.$executeRaw`UPDATE users SET session_epoch = session_epoch + 1 WHERE id = ${userId}::uuid`;
  return tx.$executeRaw`
    UPDATE sessions SET revoked_at = now()
     WHERE user_id = ${userId}::uuid AND revoked_at IS NULL
       AND family_id IS DISTINCT FROM (SELECT family_id FROM sessions WHERE id = ${keep}::uuid)`;
}

/**
 * Ends one sign-in: every live session of family `familyId` (a sign-out, a leaked refresh token's
 * revocation), in the caller's transaction. A refresh writes its child only while the session it
 * rotates is live, under a share lock on that row (auth/service.ts `issue`), so the same two
 * orders hold as above: a revoked parent refuses the child, or the child committed while a
 * statement here waited for its parent's lock. That statement revoked the parent, and the next
 * one, which sees the child, revokes it: the statements go on until one finds nothing left.
 * Usually two.
 * @returns how many ended.
 */
export async function endFamily(tx: Prisma.TransactionClient, familyId: string): Promise<number> {
  let ended = 0;
  for (;;) {
    const now = await tx.$executeRaw`
      UPDATE sessions SET revoked_at = now() WHERE family_id = ${familyId}::uuid AND revoked_at IS NULL`;
    if (now === 0) return ended;
    ended += now;
  }
}
