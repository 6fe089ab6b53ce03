import type { Databases } from './db/database.js';
import type { Config } from './env.js';
import type { UserRole } from './generated/central/enums.js';
import type { Logger } from './logger.js';

/** Long-lived dependencies, built once by buildApp() and shared by every request. */
export interface Deps {
  config: Config;
  logger: Logger;
  db: Databases;
  startedAt: Date;
}

/** Who is calling; null for anonymous callers. */
export interface Viewer {
  userId: string;
  role: UserRole;
  clinicId: string | null;
}

export interface Context {
  deps: Deps;
  viewer: Viewer | null;
  requestId: string;
  /** Client address, for rate limits and the audit log. */
  ip: string | null;
  logger: Logger;
}
