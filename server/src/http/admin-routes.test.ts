import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../test/harness.js';
import { createClinic } from '../../test/registration-flow.js';
import { databaseUrl, withClient } from '../db/sql.js';

describe('admin REST routes', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { clinicId } = await createClinic(t, {
    clinicName: 'Rest',
    country: 'FR',
  });
  const admin = await t.superAdmin();

  it('lists every clinic database health for super-admins only', async () => {
    expect((await fetch(`${t.url}/api/v1/admin/clinics/health`)).status).toBe(401);
    const staff = await t.app.deps.db.prisma.user.create({
      data: {
        email: `rest-staff-${Date.now()}@example.com`,
        firstName: 'S',
        lastName: 'T',
        role: 'CLINIC_ADMIN',
        clinicId,
      },
    });
    const session = await t.app.deps.auth.startSession(staff.id, { ip: null }, 'test');
    const forbidden = await fetch(`${t.url}/api/v1/admin/clinics/health`, {
      headers: { authorization: `Bearer ${session.accessToken}` },
    });
    expect(forbidden.status).toBe(403);

    const response = await fetch(`${t.url}/api/v1/admin/clinics/health`, { headers: admin });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      clinics: { id: string; dbStatus: string; tablesCount: number }[];
    };
    expect(body.clinics).toContainEqual(
      expect.objectContaining({ id: clinicId, dbStatus: 'healthy', tablesCount: 6 }),
    );
  });

  it('repairs a clinic, says when it was already healthy, and answers bad requests clearly', async () => {
    const clinic = await t.app.deps.db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    await withClient(databaseUrl(inject('pgAdminUrl'), clinic.databaseName), (c) =>
      c.query('DROP TABLE settings'),
    );
    const repair = (id: string, method = 'POST') =>
      fetch(`${t.url}/api/v1/admin/clinics/${id}/repair`, { method, headers: admin });
    const repaired = await repair(clinicId);
    expect(repaired.status).toBe(200);
    expect(await repaired.json()).toMatchObject({
      message: 'Clinic database repaired successfully',
      dataLost: false,
      actions: expect.arrayContaining(['recreated table settings']),
      before: { dbStatus: 'degraded' },
      after: { dbStatus: 'healthy' },
    });
    expect(await (await repair(clinicId)).json()).toMatchObject({
      message: 'Clinic database is already healthy',
      alreadyHealthy: true,
    });
    expect((await repair('not-a-uuid')).status).toBe(400);
    expect((await repair('00000000-0000-4000-8000-000000000000')).status).toBe(404);
    expect((await repair(clinicId, 'GET')).status).toBe(405);
    expect((await fetch(`${t.url}/api/v1/nothing-here`)).status).toBe(404);
  });
});
