/** Who may call what: every guarded root field × every kind of caller. */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';

const ZERO = '00000000-0000-4000-8000-000000000000';

describe('role boundaries of the schema', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const { clinicId } = await t.app.deps.provisioning.provisionClinic({
    clinicName: 'Authz',
    country: 'FR',
    admin: null,
  });
  const { clinicId: otherClinicId } = await t.app.deps.provisioning.provisionClinic({
    clinicName: 'Authz other',
    country: 'FR',
    admin: null,
  });

  async function as(role: 'CLIENT' | 'STAFF' | 'PRACTITIONER' | 'CLINIC_ADMIN', clinic: string) {
    const user = await prisma.user.create({
      data: {
        email: `${role.toLowerCase()}-${clinic.slice(0, 8)}-${Date.now()}@example.com`,
        firstName: 'R',
        lastName: role,
        role,
        clinicId: clinic,
        emailVerifiedAt: new Date(),
      },
    });
    const session = await t.app.deps.auth.startSession(user.id, { ip: null }, 'test');
    return { authorization: `Bearer ${session.accessToken}` };
  }
  const callers: Record<string, Record<string, string>> = {
    anonymous: {},
    client: await as('CLIENT', clinicId),
    staff: await as('STAFF', clinicId),
    practitioner: await as('PRACTITIONER', clinicId),
    'admin of another clinic': await as('CLINIC_ADMIN', otherClinicId),
    'clinic admin': await as('CLINIC_ADMIN', clinicId),
    'super-admin': await t.superAdmin(),
  };

  const operations: [string, string, Record<string, 'ok' | 'UNAUTHENTICATED' | 'FORBIDDEN'>][] = [];
  const operatorOnly = (name: string, operation: string) =>
    operations.push([
      name,
      operation,
      {
        anonymous: 'UNAUTHENTICATED',
        client: 'FORBIDDEN',
        staff: 'FORBIDDEN',
        practitioner: 'FORBIDDEN',
        'admin of another clinic': 'FORBIDDEN',
        'clinic admin': 'FORBIDDEN',
        'super-admin': 'ok',
      },
    ]);
  operatorOnly('clinicsHealth', '{ clinicsHealth { total } }');
  operatorOnly('clinics', '{ clinics(first: 1) { edges { node { id } } } }');
  operatorOnly('provisioningRuns', `{ provisioningRuns(clinicId: "${clinicId}") { id } }`);
  operatorOnly('provisioningMetrics', '{ provisioningMetrics { successes } }');
  operatorOnly('zombieReport', '{ zombieReport { empty } }');
  operatorOnly('repairClinic', `mutation { repairClinic(clinicId: "${ZERO}") { __typename } }`);
  operatorOnly('deleteClinic', `mutation { deleteClinic(clinicId: "${ZERO}") { __typename } }`);
  operatorOnly('retryProvisioning', `mutation { retryProvisioning(clinicId: "${ZERO}") { __typename } }`);
  const clinicAdmins = {
    anonymous: 'UNAUTHENTICATED',
    client: 'FORBIDDEN',
    staff: 'FORBIDDEN',
    practitioner: 'FORBIDDEN',
    'admin of another clinic': 'FORBIDDEN',
    'clinic admin': 'ok',
    'super-admin': 'ok',
  } as const;
  operations.push(['clinic', `{ clinic(id: "${clinicId}") { id name } }`, clinicAdmins]);
  operations.push([
    'addClient',
    `mutation { addClient(input: { clinicId: "${clinicId}", kind: COMPANY, email: "co@example.com", legalName: "Co" }) { __typename } }`,
    clinicAdmins,
  ]);
  operations.push([
    'inviteMember',
    `mutation { inviteMember(input: { clinicId: "${clinicId}", firstName: "A", lastName: "B", role: STAFF, channel: EMAIL, email: "new@example.com" }) { __typename } }`,
    clinicAdmins,
  ]);
  operations.push([
    'auditLog',
    '{ auditLog(first: 1) { edges { node { id } } } }',
    { ...clinicAdmins, 'admin of another clinic': 'ok' },
  ]);
  const signedIn = {
    anonymous: 'UNAUTHENTICATED',
    client: 'ok',
    staff: 'ok',
    practitioner: 'ok',
    'admin of another clinic': 'ok',
    'clinic admin': 'ok',
    'super-admin': 'ok',
  } as const;
  operations.push(['setupTwoFactor', 'mutation { setupTwoFactor { __typename } }', signedIn]);
  operations.push(['exportMyData', '{ exportMyData }', signedIn]);

  // Onboarding service: applications are managed by super-admins; onboardings by an
  // application's master key (X-Master-Key), which no user session replaces.
  const issued = await t.app.deps.applications.register('Authz', { userId: null, ip: null });
  callers.application = { 'X-Master-Key': issued.masterKey };
  const superAdminsOnly = {
    anonymous: 'UNAUTHENTICATED',
    application: 'UNAUTHENTICATED',
    client: 'FORBIDDEN',
    'clinic admin': 'FORBIDDEN',
    'super-admin': 'ok',
  } as const;
  operations.push(['applications', '{ applications { id } }', superAdminsOnly]);
  operations.push([
    'applicationOnboardings',
    '{ applicationOnboardings { uuid metadata { infrastructureStatus } } }',
    superAdminsOnly,
  ]);
  operations.push([
    'registerApplication',
    'mutation { registerApplication(name: "A") { __typename } }',
    superAdminsOnly,
  ]);
  operations.push([
    'rotateApplicationKey',
    `mutation { rotateApplicationKey(applicationId: "${ZERO}") { __typename } }`,
    superAdminsOnly,
  ]);
  operations.push([
    'revokeApplicationKey',
    `mutation { revokeApplicationKey(applicationId: "${ZERO}") { __typename } }`,
    superAdminsOnly,
  ]);
  const applicationsOnly = {
    anonymous: 'UNAUTHENTICATED',
    application: 'ok',
    client: 'FORBIDDEN',
    'clinic admin': 'FORBIDDEN',
    'super-admin': 'FORBIDDEN',
  } as const;
  operations.push(['onboarding', `{ onboarding(uuid: "${ZERO}") { uuid } }`, applicationsOnly]);
  operations.push([
    'startOnboarding',
    'mutation { startOnboarding(input: { email: "a@example.com" }) { __typename } }',
    applicationsOnly,
  ]);
  operations.push([
    'provisionOnboarding',
    `mutation { provisionOnboarding(uuid: "${ZERO}", generateApiKey: false) { __typename } }`,
    applicationsOnly,
  ]);
  operations.push([
    'completeOnboarding',
    `mutation { completeOnboarding(uuid: "${ZERO}", tenantId: "t") { __typename } }`,
    applicationsOnly,
  ]);

  const cases = operations.flatMap(([name, operation, expected]) =>
    Object.entries(expected).map(([caller, outcome]) => [name, caller, outcome, operation] as const),
  );

  it.each(cases)('%s as %s → %s', async (_name, caller, outcome, operation) => {
    const { body } = await t.gql(operation, undefined, callers[caller]);
    const code = body.errors?.[0]?.extensions?.code;
    if (outcome === 'ok') expect(code === 'UNAUTHENTICATED' || code === 'FORBIDDEN').toBe(false);
    else expect(code).toBe(outcome);
  });
});
