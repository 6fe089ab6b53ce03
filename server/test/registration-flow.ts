/**
 * Clinic registration through the public surface (GraphQL over HTTP), as a signing-up clinic
 * does it, for tests that need clinics and their admins: register, read the verification link
 * from the dev mailbox (as the super-admin), verify, sign in.
 */
import { expect } from 'vitest';
import { devMailbox } from '../src/modules/mail/service.js';
import type { TestApp } from './harness.js';
import type { SmtpSink } from './smtp-sink.js';

export const REGISTER = `mutation Register($input: RegisterClinicInput!) {
  registerClinic(input: $input) {
    __typename
    ... on RegisterClinicSuccess { status clinic { id name subdomain status } user { id email } }
    ... on Error { code message }
    ... on ValidationError { fields { path message } }
    ... on ProvisioningFailedError { runId step }
  }
}`;

export interface RegisterAnswer {
  status: number;
  headers: Headers;
  result?: {
    __typename: string;
    status?: string;
    clinic?: { id: string; name: string; subdomain: string; status: string };
    user?: { id: string; email: string };
    code?: string;
    message?: string;
    fields?: { path: string[]; message: string }[];
    runId?: string;
    step?: string;
  };
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

/** The current version of every document (the defaults of CONSENT_TERMS_VERSION and CONSENT_PRIVACY_VERSION). */
export const CURRENT_ACCEPTANCES = [
  { document: 'TERMS', version: '2026-01' },
  { document: 'PRIVACY', version: '2026-01' },
];

let counter = 0;

/**
 * `n` random lowercase letters. Random parts of clinic names use letters only: a name with seven
 * or more digits reads as a phone number and is refused.
 */
export function letters(n: number): string {
  return Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(Math.random() * 26))).join('');
}

/** A valid registerClinic input; every call gets its own e-mail. */
export function registrationInput(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    clinicName: `Clinique ${letters(6)}`,
    country: 'FR',
    adminEmail: `admin-${counter}-${Math.random().toString(36).slice(2, 10)}@example.com`,
    adminPassword: 'a sturdy passphrase 42',
    adminFirstName: 'Marie',
    adminLastName: 'Curie',
    acceptedDocuments: CURRENT_ACCEPTANCES,
    ...overrides,
  };
}

export async function registerClinic(
  t: TestApp,
  overrides: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<RegisterAnswer> {
  const {
    status,
    body,
    headers: answerHeaders,
  } = await t.gql<{ registerClinic: RegisterAnswer['result'] }>(
    REGISTER,
    { input: registrationInput(overrides) },
    headers,
  );
  return { status, headers: answerHeaders, result: body.data?.registerClinic, errors: body.errors };
}

/**
 * The verification token of the newest verification e-mail to `email`: from the dev mailbox, or
 * from `sink` when the app sends through SMTP_URL.
 */
export async function verificationToken(t: TestApp, email: string, sink?: SmtpSink): Promise<string> {
  let text: string | undefined;
  if (sink) {
    const mail = await sink.waitFor(
      (message) =>
        JSON.stringify(message.to ?? '').includes(email) && /verify-email/.test(message.text ?? ''),
    );
    text = mail.text;
  } else {
    const { body } = await t.gql<{ devMailbox: { kind: string; text: string }[] }>(
      'query ($to: String!) { devMailbox(to: $to) { kind text } }',
      { to: email },
      await t.superAdmin(),
    );
    text = body.data?.devMailbox.find((message) => message.kind === 'email_verification')?.text;
  }
  const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(text ?? '')?.[1];
  if (!token) throw new Error(`no verification e-mail for ${email}`);
  return token;
}

/**
 * The 6-digit code of the newest `kind` mail to `email` (a sign-in code, an invitation), once
 * the dev transport has delivered at least `atLeast` mails of that kind.
 */
export async function mailedCode(
  t: TestApp,
  email: string,
  { kind = 'login_code', atLeast = 1 }: { kind?: string; atLeast?: number } = {},
): Promise<string> {
  let code = '';
  await expect
    .poll(async () => {
      const mails = (await devMailbox(t.app.deps.db.prisma, email, t.config.encryptionKey)).filter(
        (mail) => mail.kind === kind,
      );
      code = mails.length >= atLeast ? (/\b(\d{6})\b/.exec(mails[0]?.text ?? '')?.[1] ?? '') : '';
      return code;
    })
    .toMatch(/^\d{6}$/);
  return code;
}

export async function verifyEmail(t: TestApp, email: string, sink?: SmtpSink): Promise<void> {
  const token = await verificationToken(t, email, sink);
  const { body } = await t.gql<{ verifyEmail: { __typename: string } }>(
    'mutation ($token: String!) { verifyEmail(token: $token) { __typename } }',
    { token },
  );
  if (body.data?.verifyEmail.__typename !== 'VerifyEmailSuccess')
    throw new Error(`verifyEmail failed: ${JSON.stringify(body)}`);
}

/** `Authorization` headers of a password sign-in. */
export async function signIn(t: TestApp, email: string, password = 'a sturdy passphrase 42') {
  const { body } = await t.gql<{ signInWithPassword: { __typename: string; accessToken?: string } }>(
    `mutation ($email: String!, $password: String!) { signInWithPassword(email: $email, password: $password) {
      __typename ... on AuthSession { accessToken } } }`,
    { email, password },
  );
  const token = body.data?.signInWithPassword.accessToken;
  if (!token) throw new Error(`sign-in failed: ${JSON.stringify(body)}`);
  return { authorization: `Bearer ${token}` };
}

/** A registration that did not answer RegisterClinicSuccess: its typename, code and fields, when it has them. */
export class RegistrationRefused extends Error {
  readonly typename: string | undefined;
  readonly code: string | undefined;
  readonly fields: { path: string[]; message: string }[];
  /** ProvisioningFailedError: the run that was rolled back, and its failed step. */
  readonly runId: string | undefined;
  readonly step: string | undefined;

  constructor(readonly answer: RegisterAnswer) {
    super(`registration refused: ${JSON.stringify(answer.result ?? answer.errors ?? answer.status)}`);
    this.name = 'RegistrationRefused';
    this.typename = answer.result?.__typename;
    this.code = answer.result?.code ?? (answer.errors?.[0]?.extensions?.code as string | undefined);
    this.fields = answer.result?.fields ?? [];
    this.runId = answer.result?.runId;
    this.step = answer.result?.step;
  }
}

export interface CreatedClinic {
  clinicId: string;
  /** The registration's REGISTER run. */
  runId: string;
  clinic: { id: string; name: string; subdomain: string; status: string; databaseName: string };
  /** The clinic admin who registered it: not yet verified (see verifyAndSignIn). */
  admin: { id: string; email: string; password: string };
}

/**
 * A clinic registered over GraphQL, as a signing-up clinic does it (`overrides`: registerClinic
 * input fields, e.g. clinicName, country).
 * @throws RegistrationRefused when the answer is not RegisterClinicSuccess.
 */
export async function createClinic(
  t: TestApp,
  overrides: Record<string, unknown> = {},
): Promise<CreatedClinic> {
  const input = registrationInput(overrides);
  const { status, body, headers } = await t.gql<{ registerClinic: RegisterAnswer['result'] }>(REGISTER, {
    input,
  });
  const result = body.data?.registerClinic;
  if (result?.__typename !== 'RegisterClinicSuccess' || !result.clinic || !result.user)
    throw new RegistrationRefused({ status, headers, result, errors: body.errors });
  const { prisma } = t.app.deps.db;
  const [{ databaseName }, run] = await Promise.all([
    prisma.clinic.findUniqueOrThrow({ where: { id: result.clinic.id }, select: { databaseName: true } }),
    prisma.provisioningRun.findFirstOrThrow({
      where: { clinicId: result.clinic.id, kind: 'REGISTER' },
      orderBy: { startedAt: 'desc' },
      select: { id: true },
    }),
  ]);
  return {
    clinicId: result.clinic.id,
    runId: run.id,
    clinic: { ...result.clinic, databaseName },
    admin: { ...result.user, password: input.adminPassword as string },
  };
}

/**
 * Verifies `admin`'s e-mail with the link of their verification e-mail (the dev mailbox, or
 * `sink` when the app mails through SMTP_URL), signs them in and returns their access token.
 */
export async function verifyAndSignIn(
  t: TestApp,
  sink: SmtpSink | undefined,
  admin: { email: string; password?: string },
): Promise<string> {
  await verifyEmail(t, admin.email, sink);
  const { authorization } = await signIn(t, admin.email, admin.password);
  return authorization.slice('Bearer '.length);
}

/** A READY clinic with a verified, signed-in admin (`sink`: the app mails through SMTP_URL). */
export async function clinicWithAdmin(t: TestApp, overrides: Record<string, unknown> = {}, sink?: SmtpSink) {
  const { clinic, admin } = await createClinic(t, overrides);
  const token = await verifyAndSignIn(t, sink, admin);
  return {
    clinic,
    user: { id: admin.id, email: admin.email },
    headers: { authorization: `Bearer ${token}` },
  };
}
