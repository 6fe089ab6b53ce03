import type { UserRole } from '../../generated/central/enums.js';

/**
 * Who is calling; null for anonymous callers. Owned by auth, which authenticates it; context.ts
 * re-exports it for resolvers (and so imports nothing of auth's but types, with no cycle back).
 */
export interface Viewer {
  userId: string;
  role: UserRole;
  clinicId: string | null;
  /** The session the access token belongs to (checked on every request). */
  sessionId: string;
  /** When the access token expires: live subscriptions end then. */
  expiresAt: Date;
}
