/**
 * The admin REST routes (README, "The two commands" and "Security"), for operators' scripts:
 * `GET /api/v1/admin/clinics/health` and `POST /api/v1/admin/clinics/{id}/repair`, with a
 * super-admin bearer token. Same services as the GraphQL fields.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deps } from '../context.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { isUuid } from '../ids.js';
import type { ClinicHealth } from '../modules/provisioning/index.js';
import { clientAddress } from './client-address.js';
import { decodePathSegment } from './input.js';
import { errorReply, sendReply } from './rest.js';
import { sendJson } from './security.js';

/** The services these routes use. */
export type AdminRouteDeps = Pick<Deps, 'config' | 'auth' | 'provisioning'>;

/** Their shape, kept for existing scripts: lower-case statuses, camelCase fields. */
function present(health: ClinicHealth) {
  return {
    id: health.clinicId,
    name: health.name,
    dbStatus: health.dbStatus.toLowerCase(),
    tablesCount: health.tablesCount,
    expectedTables: health.expectedTables,
    missingTables: health.missingTables,
    schemaVersion: health.schemaVersion,
    errors: health.errors,
    lastCheck: health.lastCheck.toISOString(),
  };
}

/** @returns false when the path is not one of these routes. */
export async function handleAdminRoute(
  deps: AdminRouteDeps,
  pathname: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  const health = pathname === '/api/v1/admin/clinics/health';
  const repair = /^\/api\/v1\/admin\/clinics\/([^/]+)\/repair$/.exec(pathname);
  if (!health && !repair) return false;

  const viewer = await deps.auth.viewerFromAuthorization(req.headers.authorization);
  if (!viewer) {
    sendJson(
      res,
      401,
      {
        success: false,
        error: 'unauthenticated',
        message: 'Send a super-admin access token as Authorization: Bearer …',
      },
      { 'WWW-Authenticate': 'Bearer' },
    );
    return true;
  }
  if (viewer.role !== 'SUPER_ADMIN') {
    sendJson(res, 403, { success: false, error: 'forbidden', message: 'Super-admins only' });
    return true;
  }

  if (health) {
    if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
    const report = await deps.provisioning.clinicsHealth();
    sendJson(res, 200, {
      checkedAt: report.checkedAt.toISOString(),
      total: report.total,
      healthy: report.healthy,
      unhealthy: report.unhealthy,
      clinics: report.clinics.map(present),
    });
    return true;
  }

  if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
  const clinicId = decodePathSegment(repair?.[1] ?? '');
  if (!isUuid(clinicId)) {
    sendJson(res, 400, {
      success: false,
      error: 'validation_failed',
      message: 'The clinic id must be a UUID',
    });
    return true;
  }
  try {
    const result = await deps.provisioning.repairClinic(clinicId, {
      userId: viewer.userId,
      ip: clientAddress(req, deps.config.trustedProxies),
    });
    sendJson(res, 200, {
      message: result.alreadyHealthy
        ? 'Clinic database is already healthy'
        : result.dataLost
          ? 'Clinic database recreated empty: its data is lost'
          : 'Clinic database repaired successfully',
      alreadyHealthy: result.alreadyHealthy,
      dataLost: result.dataLost,
      actions: result.actions,
      before: present(result.before),
      after: present(result.after),
    });
  } catch (error) {
    // Expected failures only; anything else is the server's 500, logged where it is caught.
    if (error instanceof NotFoundError || error instanceof ConflictError)
      sendReply(res, errorReply(error, 'en'));
    else throw error;
  }
  return true;
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  sendJson(
    res,
    405,
    { success: false, error: 'method_not_allowed', message: `Use ${allow}` },
    { Allow: allow },
  );
  return true;
}
