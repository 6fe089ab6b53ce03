/** Consents in GraphQL: the acceptance input other mutations take, myConsents, withdraw, accept. */
import { builder, errorType } from '../../builder.js';
import type { Config } from '../../env.js';
import type { ConflictError } from '../../errors.js';
import { UserRef } from '../users/schema.js';
import { ConsentWithdrawnError } from './errors.js';
import { type Acceptance, CONSENT_DOCUMENTS } from './service.js';

export const ConsentDocumentEnum = builder.enumType('ConsentDocument', {
  description: 'A document a user accepts, by version (CONSENT_TERMS_VERSION, CONSENT_PRIVACY_VERSION).',
  values: {
    TERMS: { description: 'The terms of use.' },
    PRIVACY: { description: 'The privacy notice; withdrawing it blocks sign-in until it is accepted again.' },
  } as const,
});

/** The `acceptedDocuments` argument of registerClinic, activateAccount and acceptConsents. */
export const AcceptedDocumentInput = builder.inputType('AcceptedDocumentInput', {
  description: 'The acceptance of one document at one version.',
  fields: (t) => ({
    document: t.field({ type: ConsentDocumentEnum, required: true, description: 'Which document.' }),
    version: t.string({ required: true, description: 'The version accepted; must be the current one.' }),
  }),
});

errorType(
  ConsentWithdrawnError,
  'ConsentWithdrawnError',
  'The user withdrew their acceptance of the privacy notice; sign in again with `acceptedDocuments` (`CONSENT_WITHDRAWN`).',
);

/** A sign-in that waits for the user to accept documents (a new version, or a withdrawn terms of use). */
export interface ConsentRequired {
  consentRequired: Acceptance[];
}

const RequiredDocumentRef = builder.objectRef<Acceptance>('RequiredDocument').implement({
  description: 'A document to accept, at its current version.',
  fields: (t) => ({
    document: t.field({
      type: ConsentDocumentEnum,
      description: 'Which document.',
      resolve: (a) => a.document,
    }),
    version: t.exposeString('version', { description: 'Its current version, to pass back as accepted.' }),
  }),
});

/** Every document at its current version. */
const currentDocuments = (config: Pick<Config, 'consentVersions'>): Acceptance[] =>
  CONSENT_DOCUMENTS.map((document) => ({ document, version: config.consentVersions[document] }));

export const ConsentRequiredRef = builder.objectRef<ConsentRequired>('ConsentRequired').implement({
  description:
    'The password was right, but documents changed since the user accepted them: sign in again with `acceptedDocuments`. No session yet.',
  isTypeOf: (value) => Array.isArray((value as ConsentRequired).consentRequired),
  fields: (t) => ({
    documents: t.field({
      type: [RequiredDocumentRef],
      description: 'What changed since the user accepted it (a new version, or a withdrawal).',
      resolve: (value) => value.consentRequired,
    }),
    current: t.field({
      type: [RequiredDocumentRef],
      description:
        'Every document at its current version: what `acceptedDocuments` must name (an acceptance covers all of them).',
      resolve: (_value, _args, context) => currentDocuments(context.deps.config),
    }),
  }),
});

// What a sign-in refused for a withdrawn privacy notice must accept again (every document at its
// current version, as ConsentRequired.current), so that a client can offer it at once.
builder.objectField(ConsentWithdrawnError as unknown as typeof ConflictError, 'current', (t) =>
  t.field({
    type: [RequiredDocumentRef],
    description:
      'Every document at its current version: what `acceptedDocuments` must name to sign in again.',
    resolve: (_error, _args, context) => currentDocuments(context.deps.config),
  }),
);

interface ConsentShape {
  id: string;
  document: string;
  version: string;
  acceptedAt: Date;
  withdrawnAt: Date | null;
  ip: string | null;
}

export const ConsentRef = builder.objectRef<ConsentShape>('Consent').implement({
  description: 'One recorded acceptance of a document version.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The record.' }),
    document: t.field({
      type: ConsentDocumentEnum,
      description: 'The document accepted.',
      resolve: (consent) => consent.document as Acceptance['document'],
    }),
    version: t.exposeString('version', { description: 'The version accepted.' }),
    acceptedAt: t.expose('acceptedAt', { type: 'DateTime', description: 'When it was accepted.' }),
    withdrawnAt: t.expose('withdrawnAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the acceptance was withdrawn; null while it holds.',
    }),
    ip: t.exposeString('ip', { nullable: true, description: 'The client address it was accepted from.' }),
  }),
});

const WithdrawConsentSuccess = builder.objectRef<{ withdrawn: number }>('WithdrawConsentSuccess').implement({
  description: 'The acceptance is withdrawn (the same answer when none was open).',
  fields: (t) => ({
    withdrawn: t.exposeInt('withdrawn', { description: 'How many open acceptances were closed.' }),
  }),
});

const AcceptConsentsSuccess = builder.objectRef<{ userId: string }>('AcceptConsentsSuccess').implement({
  description: 'The current versions are accepted.',
  fields: (t) => ({
    consents: t.field({
      type: [ConsentRef],
      description: 'The signed-in user’s consents, newest first.',
      resolve: (result, _args, context) => context.deps.consents.list(result.userId),
    }),
  }),
});

/** Reads `acceptedDocuments` as plain acceptances (the enum makes `document` one of ours). */
export const acceptancesOf = (
  input: readonly { document: string; version: string }[] | null | undefined,
): Acceptance[] | null =>
  input?.map(({ document, version }) => ({
    document: document as Acceptance['document'],
    version,
  })) ?? null;

builder.queryField('myConsents', (t) =>
  t.field({
    type: [ConsentRef],
    description: 'Signed-in users: the documents they accepted, withdrawals included, newest first.',
    authScopes: { authenticated: true },
    // A consent is the user's own: read on the owner connection, by the viewer's id.
    resolve: (_root, _args, context) => context.deps.consents.list(context.viewer?.userId as string),
  }),
);

// Another module's type grows a field (the users module does not know consents).
builder.objectField(UserRef, 'consents', (t) =>
  t.field({
    type: [ConsentRef],
    description:
      'What this user accepted, withdrawals included, newest first: the user themself, an admin of their clinic, or a super-admin.',
    // Identity only in the answer of those who may see it; FORBIDDEN for anyone else.
    authScopes: (user, _args, context) =>
      context.viewer?.userId === user.id || { superAdmin: true, clinicAdmin: user.clinicId ?? '' },
    resolve: (user, _args, context) => context.deps.consents.list(user.id),
  }),
);

builder.mutationFields((t) => ({
  withdrawConsent: t.field({
    type: WithdrawConsentSuccess,
    description:
      'Signed-in users: withdraws their acceptance of `document`. Withdrawing PRIVACY makes sign-in answer CONSENT_WITHDRAWN until it is accepted again.',
    authScopes: { authenticated: true },
    errors: {},
    args: {
      document: t.arg({ type: ConsentDocumentEnum, required: true, description: 'The document.' }),
    },
    resolve: async (_root, { document }, context) => {
      const viewer = { userId: context.viewer?.userId as string, clinicId: context.viewer?.clinicId ?? null };
      const withdrawn = await context.deps.consents.withdraw(viewer, document, context.ip);
      return { withdrawn };
    },
  }),
  acceptConsents: t.field({
    type: AcceptConsentsSuccess,
    description:
      'Signed-in users: accepts the current version of every document. VALIDATION on `acceptedDocuments` when one is missing or not current.',
    authScopes: { authenticated: true },
    errors: {},
    args: {
      acceptedDocuments: t.arg({
        type: [AcceptedDocumentInput],
        required: true,
        description: `Every document (${CONSENT_DOCUMENTS.join(', ')}) at its current version.`,
      }),
    },
    resolve: async (_root, args, context) => {
      const viewer = { userId: context.viewer?.userId as string, clinicId: context.viewer?.clinicId ?? null };
      await context.deps.consents.accept(viewer, acceptancesOf(args.acceptedDocuments), context.ip);
      return { userId: viewer.userId };
    },
  }),
}));
