/**
 * Who may call what. The matrix is generated from the schema: every root field of the printed
 * schema (server/schema.graphql), every subscription, and every field or type that carries an auth
 * scope in the built schema must have an entry below, so a new field cannot escape it. Each entry
 * is tried by every kind of caller, a fresh one per case (some operations end their caller's
 * session or account), each from its own client address (so no rate limit or lockout decides a
 * case). "ok" means a real answer: no GraphQL error at all and the value the entry expects;
 * refusals are the `UNAUTHENTICATED` / `FORBIDDEN` codes of the README's Access paragraph.
 * Subscriptions run over a real WebSocket: a refused one ends with its error before any event,
 * an allowed one receives the next event.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  buildSchema,
  type GraphQLFieldMap,
  type GraphQLNamedType,
  isInterfaceType,
  isObjectType,
} from 'graphql';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../test/registration-flow.js';
import { REPO_ROOT } from './db/paths.js';
import { schema } from './schema.js';

const ZERO = '00000000-0000-4000-8000-000000000000';
const PASSWORD = 'a sturdy passphrase 42';

const CALLERS = [
  'anonymous',
  'application',
  'client',
  'staff',
  'practitioner',
  'admin of another clinic',
  'clinic admin',
  'super-admin',
] as const;
type Caller = (typeof CALLERS)[number];
type Outcome = 'ok' | 'UNAUTHENTICATED' | 'FORBIDDEN';
type Access = Record<Caller, Outcome>;

const users = { client: 'FORBIDDEN', staff: 'FORBIDDEN', practitioner: 'FORBIDDEN' } as const;
/** Anyone, signed in or not, with or without a master key. */
const PUBLIC: Access = Object.fromEntries(CALLERS.map((caller) => [caller, 'ok'])) as Access;
/** Any signed-in user; a master key is not a user. */
const SIGNED_IN: Access = { ...PUBLIC, anonymous: 'UNAUTHENTICATED', application: 'UNAUTHENTICATED' };
/** Platform operators: super-admins only. */
const SUPER_ADMINS: Access = {
  anonymous: 'UNAUTHENTICATED',
  application: 'UNAUTHENTICATED',
  ...users,
  'admin of another clinic': 'FORBIDDEN',
  'clinic admin': 'FORBIDDEN',
  'super-admin': 'ok',
};
/** Admins of the clinic in the arguments, and super-admins. */
const CLINIC_ADMINS: Access = { ...SUPER_ADMINS, 'clinic admin': 'ok' };
/** The onboarding service's applications, by X-Master-Key; no user session replaces one. */
const APPLICATIONS: Access = {
  anonymous: 'UNAUTHENTICATED',
  application: 'ok',
  ...users,
  'admin of another clinic': 'FORBIDDEN',
  'clinic admin': 'FORBIDDEN',
  'super-admin': 'FORBIDDEN',
};

interface Entry {
  /** The operation; `$fresh` in it becomes a value unique to the case. */
  operation: string;
  access: Access;
  /** What an allowed caller gets at the operation's root field. */
  answer: (value: unknown, caller: Caller) => void;
}

const typename = (name: string) => (value: unknown) => expect(value).toMatchObject({ __typename: name });
const list = (value: unknown) => expect(Array.isArray(value)).toBe(true);

describe('role boundaries of the schema', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    // Every case comes from its own address (X-Forwarded-For), see the file comment.
    TRUSTED_PROXIES: '1',
  });
  const { prisma } = t.app.deps.db;

  /** Clinics as production makes them: registered over HTTP. */
  async function registerClinic(name: string) {
    const adminEmail = `authz-${randomBytes(4).toString('hex')}@example.com`;
    const { body } = await t.gql<{ registerClinic: { __typename: string; clinic: { id: string } } }>(
      'mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) { __typename ... on RegisterClinicSuccess { clinic { id } } } }',
      {
        input: {
          clinicName: name,
          country: 'FR',
          adminEmail,
          adminPassword: PASSWORD,
          adminFirstName: 'A',
          adminLastName: 'Z',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
      { 'x-forwarded-for': '198.18.255.1' },
    );
    expect(body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
    return { clinicId: body.data?.registerClinic.clinic.id as string, adminEmail };
  }
  const { clinicId, adminEmail: takenEmail } = await registerClinic('Authz');
  const { clinicId: otherClinicId } = await registerClinic('Authz other');
  const issued = await t.app.deps.applications.register('Authz', { userId: null, ip: null });
  const masterKey = { 'X-Master-Key': issued.masterKey };
  const started = await t.gql<{ startOnboarding: { onboarding: { uuid: string } } }>(
    'mutation { startOnboarding(input: { email: "onboarded@example.com" }) { ... on StartOnboardingSuccess { onboarding { uuid } } } }',
    undefined,
    { ...masterKey, 'x-forwarded-for': '198.18.255.2' },
  );
  const onboardingUuid = started.body.data?.startOnboarding.onboarding.uuid as string;
  expect(onboardingUuid).toMatch(/^[0-9a-f-]{36}$/);

  /** A new caller of that kind: a user with its own session, or the application's key. */
  async function caller(kind: Caller): Promise<Record<string, string>> {
    if (kind === 'anonymous') return {};
    if (kind === 'application') return masterKey;
    const role = (
      {
        client: 'CLIENT',
        staff: 'STAFF',
        practitioner: 'PRACTITIONER',
        'admin of another clinic': 'CLINIC_ADMIN',
        'clinic admin': 'CLINIC_ADMIN',
        'super-admin': 'SUPER_ADMIN',
      } as const
    )[kind];
    const user = await prisma.user.create({
      data: {
        email: `${role.toLowerCase()}-${randomBytes(6).toString('hex')}@example.com`,
        firstName: 'R',
        lastName: role,
        role,
        clinicId:
          kind === 'super-admin' ? null : kind === 'admin of another clinic' ? otherClinicId : clinicId,
        emailVerifiedAt: new Date(),
      },
    });
    const session = await t.app.deps.auth.startSession(user.id, { ip: null }, 'test');
    return { authorization: `Bearer ${session.accessToken}` };
  }

  const clinicField = (field: string, check: (value: unknown) => void): Entry => ({
    operation: `{ clinic(id: "${clinicId}") { id ${field} } }`,
    // The clinic itself is readable by its admins; these fields are for operators only.
    access: SUPER_ADMINS,
    answer: (value) => check((value as Record<string, unknown>)[field.split(' ')[0] as string]),
  });
  const string = (value: unknown) => expect(value).toEqual(expect.stringMatching(/./));

  const matrix: Record<string, Entry> = {
    // Queries
    'Query.applicationOnboardings': {
      operation: '{ applicationOnboardings { uuid } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toContainEqual({ uuid: onboardingUuid }),
    },
    'Query.applications': {
      operation: '{ applications { id } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toContainEqual({ id: issued.application.id }),
    },
    'Query.auditLog': {
      operation: '{ auditLog(first: 1) { __typename edges { node { id } } } }',
      access: { ...CLINIC_ADMINS, 'admin of another clinic': 'ok' },
      answer: typename('QueryAuditLogConnection'),
    },
    'Query.clinic': {
      operation: `{ clinic(id: "${clinicId}") { id name } }`,
      access: CLINIC_ADMINS,
      answer: (value) => expect(value).toEqual({ id: clinicId, name: 'Authz' }),
    },
    'Query.clinics': {
      operation: '{ clinics(first: 10) { edges { node { id } } } }',
      access: SUPER_ADMINS,
      answer: (value) =>
        expect(value).toMatchObject({ edges: expect.arrayContaining([{ node: { id: clinicId } }]) }),
    },
    'Query.clinicsHealth': {
      operation: '{ clinicsHealth { total } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual({ total: 2 }),
    },
    'Query.databaseServers': {
      operation: '{ databaseServers { reachable } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual([{ reachable: true }]),
    },
    'Query.webhookDeliveries': {
      operation: `{ webhookDeliveries(applicationId: "${ZERO}") { id } }`,
      access: SUPER_ADMINS,
      answer: list,
    },
    'Query.webhookEndpoints': {
      operation: `{ webhookEndpoints(applicationId: "${ZERO}") { id } }`,
      access: SUPER_ADMINS,
      answer: list,
    },
    'Query.devMailbox': {
      operation: '{ devMailbox(to: "nobody@example.com") { id } }',
      access: SUPER_ADMINS,
      answer: list,
    },
    'Query.devSmsOutbox': {
      operation: '{ devSmsOutbox(to: "+33600000000") { to } }',
      access: SUPER_ADMINS,
      answer: list,
    },
    'Query.exportMyData': {
      operation: '{ exportMyData }',
      access: SIGNED_IN,
      answer: (value) => expect(value).toMatchObject({ user: { id: expect.any(String) } }),
    },
    'Query.myConsents': {
      operation: '{ myConsents { document } }',
      access: SIGNED_IN,
      answer: (value) => expect(Array.isArray(value)).toBe(true),
    },
    'Query.health': {
      operation: '{ health { status } }',
      access: PUBLIC,
      answer: (value) => expect(value).toEqual({ status: 'OK' }),
    },
    'Query.me': {
      operation: '{ me { id } }',
      access: PUBLIC,
      answer: (value, who) =>
        who === 'anonymous' || who === 'application'
          ? expect(value).toBeNull()
          : expect(value).toEqual({ id: expect.any(String) }),
    },
    'Query.onboarding': {
      operation: `{ onboarding(uuid: "${onboardingUuid}") { uuid } }`,
      access: APPLICATIONS,
      answer: (value) => expect(value).toEqual({ uuid: onboardingUuid }),
    },
    'Query.provisioningMetrics': {
      operation: '{ provisioningMetrics { successes } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual({ successes: 2 }),
    },
    'Query.provisioningRuns': {
      operation: `{ provisioningRuns(clinicId: "${clinicId}") { clinicId } }`,
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual([{ clinicId }]),
    },
    'Query.provisioningRun': {
      operation: `{ provisioningRun(id: "${ZERO}") { id } }`,
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toBeNull(),
    },
    'Query.rollouts': {
      operation: '{ rollouts { id } }',
      access: SUPER_ADMINS,
      answer: list,
    },
    'Query.rollout': {
      operation: `{ rollout(id: "${ZERO}") { id } }`,
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toBeNull(),
    },
    'Query.signInLinkInTerminal': {
      operation: '{ signInLinkInTerminal }',
      access: PUBLIC,
      answer: (value) => expect(value).toBe(false), // test environment: no banner link
    },
    'Query.zombieReport': {
      operation: '{ zombieReport { empty } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual({ empty: true }),
    },

    // Mutations
    'Mutation.activateAccount': {
      operation: `mutation { activateAccount(input: { email: "$fresh@example.com", code: "123456", password: "${PASSWORD}", acceptedDocuments: [{ document: TERMS, version: "2026-01" }, { document: PRIVACY, version: "2026-01" }] }) { __typename } }`,
      access: PUBLIC,
      answer: typename('InvalidCodeError'),
    },
    'Mutation.addClient': {
      operation: `mutation { addClient(input: { clinicId: "${clinicId}", kind: COMPANY, email: "$fresh@example.com", legalName: "Co" }) { __typename } }`,
      access: CLINIC_ADMINS,
      answer: typename('ClientRecord'),
    },
    'Mutation.completeOnboarding': {
      operation: `mutation { completeOnboarding(uuid: "${ZERO}", tenantId: "t") { __typename } }`,
      access: APPLICATIONS,
      answer: typename('NotFoundError'),
    },
    'Mutation.confirmTwoFactor': {
      operation: 'mutation { confirmTwoFactor(code: "000000") { __typename } }',
      access: SIGNED_IN,
      answer: typename('InvalidCodeError'), // no setupTwoFactor yet: no code can match
    },
    'Mutation.deleteClinic': {
      operation: `mutation { deleteClinic(clinicId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.acceptConsents': {
      operation:
        'mutation { acceptConsents(acceptedDocuments: [{ document: TERMS, version: "2026-01" }, { document: PRIVACY, version: "2026-01" }]) { __typename } }',
      access: SIGNED_IN,
      answer: typename('AcceptConsentsSuccess'),
    },
    'Mutation.withdrawConsent': {
      operation: 'mutation { withdrawConsent(document: TERMS) { __typename } }',
      access: SIGNED_IN,
      answer: typename('WithdrawConsentSuccess'),
    },
    'Mutation.deleteMyAccount': {
      operation: 'mutation { deleteMyAccount { __typename } }',
      access: SIGNED_IN,
      answer: typename('DeleteMyAccountSuccess'),
    },
    'Mutation.disableTwoFactor': {
      operation: 'mutation { disableTwoFactor(code: "000000") { __typename } }',
      access: SIGNED_IN,
      answer: typename('DisableTwoFactorSuccess'), // not enabled: nothing to disable
    },
    'Mutation.injectFault': {
      // A step no registration of this file reaches again.
      operation: 'mutation { injectFault(step: verification_email, times: 1) { __typename } }',
      access: SUPER_ADMINS,
      answer: typename('InjectFaultSuccess'),
    },
    'Mutation.inviteMember': {
      operation: `mutation { inviteMember(input: { clinicId: "${clinicId}", firstName: "A", lastName: "B", role: STAFF, channel: EMAIL, email: "$fresh@example.com" }) { __typename } }`,
      access: CLINIC_ADMINS,
      answer: typename('InviteMemberSuccess'),
    },
    'Mutation.provisionOnboarding': {
      operation: `mutation { provisionOnboarding(uuid: "${ZERO}", generateApiKey: false) { __typename } }`,
      access: APPLICATIONS,
      answer: typename('NotFoundError'),
    },
    'Mutation.refreshSession': {
      operation: 'mutation { refreshSession(refreshToken: "$fresh") { __typename } }',
      access: PUBLIC,
      answer: typename('InvalidRefreshTokenError'),
    },
    'Mutation.registerApplication': {
      operation: 'mutation { registerApplication(name: "App $fresh") { __typename } }',
      access: SUPER_ADMINS,
      answer: typename('ApplicationKeyIssued'),
    },
    'Mutation.registerClinic': {
      // A taken e-mail: a real answer of the resolver, without provisioning a clinic per case.
      operation: `mutation { registerClinic(input: { clinicName: "Taken", country: "FR", adminEmail: "${takenEmail}", adminPassword: "${PASSWORD}", adminFirstName: "A", adminLastName: "B", acceptedDocuments: [{ document: TERMS, version: "2026-01" }, { document: PRIVACY, version: "2026-01" }] }) { __typename } }`,
      access: PUBLIC,
      answer: typename('EmailTakenError'),
    },
    'Mutation.acceptDatabaseServer': {
      operation: 'mutation { acceptDatabaseServer(server: "elsewhere") { __typename } }',
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.moveClinic': {
      operation: `mutation { moveClinic(clinicId: "${ZERO}", server: "elsewhere") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.createWebhookEndpoint': {
      operation: `mutation { createWebhookEndpoint(input: { applicationId: "${ZERO}", events: [ONBOARDING_PROVISIONED], url: "https://hooks.example.com/onramp" }) { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.deleteWebhookEndpoint': {
      operation: `mutation { deleteWebhookEndpoint(id: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.replayWebhookDelivery': {
      operation: `mutation { replayWebhookDelivery(deliveryId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.repairClinic': {
      operation: `mutation { repairClinic(clinicId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.requestLoginCode': {
      operation: 'mutation { requestLoginCode(email: "$fresh@example.com") { __typename } }',
      access: PUBLIC,
      answer: typename('LoginCodeRequested'),
    },
    'Mutation.resendVerificationEmail': {
      operation: 'mutation { resendVerificationEmail(email: "$fresh@example.com") { __typename } }',
      access: PUBLIC,
      answer: typename('ResendVerificationEmailSuccess'),
    },
    'Mutation.restoreClinic': {
      operation: `mutation { restoreClinic(clinicId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    // Every clinic is current: a rollout of nothing, COMPLETED at once (never a CONFLICT).
    'Mutation.startRollout': {
      operation: 'mutation { startRollout { __typename ... on Rollout { status } } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual({ __typename: 'Rollout', status: 'COMPLETED' }),
    },
    'Mutation.pauseRollout': {
      operation: `mutation { pauseRollout(id: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.resumeRollout': {
      operation: `mutation { resumeRollout(id: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.abortRollout': {
      operation: `mutation { abortRollout(id: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.retryProvisioning': {
      operation: `mutation { retryProvisioning(clinicId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.revokeApplicationKey': {
      operation: `mutation { revokeApplicationKey(applicationId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.rotateApplicationKey': {
      operation: `mutation { rotateApplicationKey(applicationId: "${ZERO}") { __typename } }`,
      access: SUPER_ADMINS,
      answer: typename('NotFoundError'),
    },
    'Mutation.setupTwoFactor': {
      operation: 'mutation { setupTwoFactor { __typename } }',
      access: SIGNED_IN,
      answer: typename('SetupTwoFactorSuccess'),
    },
    'Mutation.signInWithCode': {
      operation: 'mutation { signInWithCode(email: "$fresh@example.com", code: "000000") { __typename } }',
      access: PUBLIC,
      answer: typename('InvalidCodeError'),
    },
    'Mutation.signInWithLink': {
      operation: `mutation { signInWithLink(token: "${'A'.repeat(43)}") { __typename } }`,
      access: PUBLIC,
      answer: typename('InvalidCodeError'),
    },
    'Mutation.signInWithPassword': {
      operation:
        'mutation { signInWithPassword(email: "$fresh@example.com", password: "wrong password 1") { __typename } }',
      access: PUBLIC,
      answer: typename('InvalidCredentialsError'),
    },
    'Mutation.signOut': {
      operation: 'mutation { signOut(refreshToken: "$fresh") { __typename } }',
      access: PUBLIC,
      answer: typename('SignOutSuccess'),
    },
    'Mutation.startOnboarding': {
      operation: 'mutation { startOnboarding(input: { email: "$fresh@example.com" }) { __typename } }',
      access: APPLICATIONS,
      answer: typename('StartOnboardingSuccess'),
    },
    'Mutation.verifyEmail': {
      operation: 'mutation { verifyEmail(token: "$fresh") { __typename } }',
      access: PUBLIC,
      answer: typename('InvalidCodeError'),
    },
    'Mutation.verifyTwoFactor': {
      operation: 'mutation { verifyTwoFactor(challengeToken: "$fresh", code: "123456") { __typename } }',
      access: PUBLIC,
      answer: typename('InvalidCodeError'),
    },

    // Subscriptions (over WebSocket, see below)
    'Subscription.provisioningProgress': {
      operation: 'subscription { provisioningProgress { runId step status } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toMatchObject({ step: 'dns', status: 'STARTED' }),
    },
    'Subscription.rolloutProgress': {
      operation: 'subscription { rolloutProgress { status counts { total } } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual({ status: 'COMPLETED', counts: { total: 0 } }),
    },
    'Subscription.databaseServerChanged': {
      operation: 'subscription { databaseServerChanged { held heldFor } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toEqual({ held: false, heldFor: null }),
    },
    'Subscription.clinicHealthChanged': {
      operation: 'subscription { clinicHealthChanged { clinicId dbStatus } }',
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toMatchObject({ clinicId, dbStatus: 'HEALTHY' }),
    },

    // Guarded fields and types below the root
    'Clinic.databaseName': clinicField('databaseName', string),
    'Clinic.databaseServer': clinicField('databaseServer', string),
    'Clinic.schemaVersion': clinicField('schemaVersion', string),
    // The matrix's clinic is READY: nothing to restore.
    'Clinic.restorableUntil': clinicField('restorableUntil', (value) => expect(value).toBeNull()),
    'Clinic.health': clinicField('health { dbStatus }', (value) =>
      expect(value).toEqual({ dbStatus: 'HEALTHY' }),
    ),
    'Clinic.admin': clinicField('admin { id }', (value) => expect(value).toEqual({ id: expect.any(String) })),
    // The user themself may read it too (consents-sign-in.test.ts); here, the clinic's admin as
    // operators reach it.
    'User.consents': clinicField('admin { consents { document } }', (value) =>
      expect((value as { consents: { document: string }[] }).consents.map((c) => c.document).sort()).toEqual([
        'PRIVACY',
        'TERMS',
      ]),
    ),
    'Clinic.dnsRecords': clinicField('dnsRecords { type }', (value) =>
      expect(value).toEqual(expect.arrayContaining([{ type: 'A' }])),
    ),
    'Clinic.certificate': clinicField('certificate { fqdn }', (value) =>
      expect(value).toEqual({ fqdn: expect.stringMatching(/./) }),
    ),
    ProvisioningRun: {
      operation: `{ provisioningRuns(clinicId: "${clinicId}") { id status steps { name } } }`,
      access: SUPER_ADMINS,
      answer: (value) => expect(value).toMatchObject([{ status: 'SUCCEEDED' }]),
    },
  };

  it('covers every root field of the printed schema and every field or type with an auth scope', () => {
    const printed = buildSchema(readFileSync(resolve(REPO_ROOT, 'server/schema.graphql'), 'utf8'));
    const required = new Set<string>();
    for (const root of [printed.getQueryType(), printed.getMutationType(), printed.getSubscriptionType()]) {
      for (const field of Object.keys(root?.getFields() ?? {})) required.add(`${root?.name}.${field}`);
    }
    const scoped = (extensions: unknown) =>
      Boolean((extensions as { pothosOptions?: { authScopes?: unknown } }).pothosOptions?.authScopes);
    for (const type of Object.values(schema.getTypeMap()) as GraphQLNamedType[]) {
      if (type.name.startsWith('__') || !(isObjectType(type) || isInterfaceType(type))) continue;
      if (scoped(type.extensions)) required.add(type.name);
      for (const field of Object.values(type.getFields() as GraphQLFieldMap<unknown, unknown>)) {
        if (scoped(field.extensions)) required.add(`${type.name}.${field.name}`);
      }
    }
    expect(required.size).toBeGreaterThan(40);
    expect(Object.keys(matrix).sort()).toEqual([...required].sort());
  });

  /** The words a root field's description must use for who may call it (the README's Access paragraph). */
  const audienceOf = (access: Access): RegExp =>
    access.anonymous === 'ok'
      ? /\bPublic\b/
      : access.application === 'ok'
        ? /\bBy master key\b/
        : access.staff === 'ok'
          ? /\bsigned-in users?\b/i
          : access['clinic admin'] === 'ok'
            ? /\bclinic admins\b/i
            : /\bsuper-admins\b/i;

  it('describes each root field with the callers the matrix lets in', () => {
    const printed = buildSchema(readFileSync(resolve(REPO_ROOT, 'server/schema.graphql'), 'utf8'));
    const wrong = [printed.getQueryType(), printed.getMutationType(), printed.getSubscriptionType()].flatMap(
      (root) =>
        Object.values(root?.getFields() ?? {})
          .map((field) => ({ name: `${root?.name}.${field.name}`, description: field.description ?? '' }))
          .filter(({ name, description }) => {
            const entry = matrix[name];
            return entry !== undefined && !audienceOf(entry.access).test(description);
          })
          .map(({ name, description }) => `${name}: ${description.slice(0, 60)}`),
    );
    expect(wrong).toEqual([]);
  });

  let address = 0;
  /** Headers of a new caller of that kind, from an address no other case uses. */
  const headersOf = async (kind: Caller) => {
    address += 1;
    return { ...(await caller(kind)), 'x-forwarded-for': `198.18.${address >> 8}.${address & 255}` };
  };

  const cases = Object.entries(matrix)
    .filter(([name]) => !name.startsWith('Subscription.'))
    .flatMap(([name, entry]) => CALLERS.map((who) => [name, who, entry.access[who], entry] as const));

  it.each(cases)('%s as %s → %s', async (_name, who, outcome, entry) => {
    const operation = entry.operation.replaceAll('$fresh', randomBytes(8).toString('hex'));
    const { status, body } = await t.gql(operation, undefined, await headersOf(who));
    if (outcome === 'ok') {
      expect(body.errors).toBeUndefined();
      expect(status).toBe(200);
      const [value] = Object.values(body.data ?? {});
      entry.answer(value, who);
    } else {
      expect(body.errors?.map((error) => error.extensions?.code)).toEqual([outcome]);
    }
  });

  const subscriptionCases = Object.entries(matrix)
    .filter(([name]) => name.startsWith('Subscription.'))
    .flatMap(([name, entry]) => CALLERS.map((who) => [name, who, entry.access[who], entry] as const));

  /** Publishes what the subscription listens to, as provisioning and the health sweep do. */
  async function publish(name: string) {
    const { pubsub } = t.app.deps.events;
    if (name === 'Subscription.provisioningProgress') {
      pubsub.publish('provisioning', {
        runId: randomUUID(),
        kind: 'REGISTER',
        subject: { kind: 'CLINIC', id: clinicId, name: null },
        step: 'dns',
        status: 'STARTED',
        attempt: 1,
        message: null,
        at: new Date(),
        durationMs: null,
      });
    } else if (name === 'Subscription.databaseServerChanged') {
      // As the central database's trigger sends it when a hold begins or ends.
      const [serverId] = t.app.deps.db.servers.byId.keys();
      pubsub.publish('databaseServers', { serverId: serverId as string });
    } else if (name === 'Subscription.rolloutProgress') {
      const rollout = await t.app.deps.rollouts.startRollout({}, { userId: null });
      pubsub.publish('rollouts', { rolloutId: rollout.id });
    } else {
      const health = await t.app.deps.provisioning.checkClinic(clinicId);
      pubsub.publish('clinicHealth', { ...health, lastCheck: health.lastCheck.toISOString() });
    }
  }

  it.each(subscriptionCases)('%s over WebSocket as %s → %s', async (name, who, outcome, entry) => {
    const headers: Record<string, string> = await headersOf(who);
    const { authorization, ...upgradeHeaders } = headers;
    const client = t.ws({
      headers: upgradeHeaders,
      connectionParams: authorization ? { authorization } : {},
    });
    const results: { data?: Record<string, unknown> | null; errors?: readonly { extensions?: unknown }[] }[] =
      [];
    let failure: unknown;
    const ended = new Promise<void>((done) => {
      client.subscribe<Record<string, unknown>>(
        { query: entry.operation },
        {
          next: (result) => {
            results.push(result as (typeof results)[number]);
          },
          error: (error) => {
            failure = error;
            done();
          },
          complete: () => done(),
        },
      );
    });
    if (outcome === 'ok') {
      // The subscription is live once events reach it; publish until one does.
      await expect
        .poll(
          async () => {
            await publish(name);
            return results.length;
          },
          { timeout: 10_000, interval: 100 },
        )
        .toBeGreaterThan(0);
      expect(failure).toBeUndefined();
      expect(results[0]?.errors).toBeUndefined();
      entry.answer(Object.values(results[0]?.data ?? {})[0], who);
    } else {
      // Refused when it starts: an error, then the end, without waiting for an event.
      const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error('the subscription was not refused when it started')), 5_000),
      );
      await Promise.race([ended, timeout]);
      // graphql-ws hands the server's `error` message over as the list of errors it carried.
      const errors = Array.isArray(failure)
        ? (failure as readonly { extensions?: unknown }[])
        : results.flatMap((result) => result.errors ?? []);
      if (failure && !Array.isArray(failure)) throw failure;
      expect(errors.map((error) => (error.extensions as { code?: string } | undefined)?.code)).toEqual([
        outcome,
      ]);
      expect(results.filter((result) => result.data)).toEqual([]);
    }
  });
});
