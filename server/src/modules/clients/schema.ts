/** Client records: the people and companies a clinic serves; they sign in by e-mail code. */
import { z } from 'zod';
import { builder } from '../../builder.js';
import { ConflictError } from '../../errors.js';
import { emailSchema } from '../registration/validation.js';

const ClientKindEnum = builder.enumType('ClientKind', { values: ['PERSON', 'COMPANY'] as const });

builder.prismaObject('ClientRecord', {
  fields: (t) => ({
    id: t.exposeID('id'),
    clinicId: t.exposeID('clinicId'),
    kind: t.expose('kind', { type: ClientKindEnum }),
    email: t.exposeString('email'),
    firstName: t.exposeString('firstName', { nullable: true }),
    lastName: t.exposeString('lastName', { nullable: true }),
    legalName: t.exposeString('legalName', { nullable: true }),
    hasAccount: t.boolean({
      description:
        'Whether this client signed in through this clinic (an account created from this record). Never about accounts elsewhere.',
      resolve: (record) => record.userId !== null,
    }),
  }),
});

const AddClientInput = builder.inputType('AddClientInput', {
  fields: (t) => ({
    clinicId: t.id({ required: true }),
    kind: t.field({ type: ClientKindEnum, required: true }),
    email: t.string({ required: true }),
    firstName: t.string(),
    lastName: t.string(),
    legalName: t.string(),
  }),
});

const name = z.string().trim().min(1).max(100).nullish();
const addClientSchema = z
  .object({
    clinicId: z.uuid({ error: 'must be a clinic id (UUID)' }),
    kind: z.enum(['PERSON', 'COMPANY']),
    email: emailSchema,
    firstName: name,
    lastName: name,
    legalName: z.string().trim().min(1).max(200).nullish(),
  })
  .superRefine((input, ctx) => {
    if (input.kind === 'PERSON') {
      if (!input.firstName)
        ctx.addIssue({ code: 'custom', path: ['firstName'], message: 'A person needs a first name' });
      if (!input.lastName)
        ctx.addIssue({ code: 'custom', path: ['lastName'], message: 'A person needs a last name' });
    } else if (!input.legalName) {
      ctx.addIssue({ code: 'custom', path: ['legalName'], message: 'A company needs a legal name' });
    }
  });

builder.mutationField('addClient', (t) =>
  t.prismaField({
    type: 'ClientRecord',
    description: "Adds a person or company to a clinic's clients (clinic admins of that clinic).",
    errors: { types: [ConflictError] },
    args: { input: t.arg({ type: AddClientInput, required: true }) },
    validate: z.object({ input: addClientSchema }),
    authScopes: (_root, args) => ({ clinicAdmin: String(args.input.clinicId) }),
    resolve: async (query, _root, args, context) => {
      const input = addClientSchema.parse(args.input);
      // Never linked to an existing user here: that user may belong to another clinic, and the
      // answer (hasAccount) would tell this clinic whether the address has an account anywhere.
      // The record gets its user when the client signs in by e-mail code (auth/login-codes.ts).
      try {
        return await context.scoped(async (tx) => {
          const record = await tx.clientRecord.create({
            ...query,
            data: {
              clinicId: input.clinicId,
              kind: input.kind,
              email: input.email,
              firstName: input.firstName ?? null,
              lastName: input.lastName ?? null,
              legalName: input.kind === 'COMPANY' ? (input.legalName ?? null) : null,
            },
          });
          await tx.auditLog.create({
            data: {
              action: 'client.added',
              actorId: context.viewer?.userId,
              clinicId: input.clinicId,
              targetType: 'client_record',
              targetId: record.id,
              ip: context.ip,
            },
          });
          return record;
        });
      } catch (error) {
        if ((error as { code?: string }).code === 'P2002')
          throw new ConflictError('This clinic already has a client with that e-mail');
        throw error;
      }
    },
  }),
);
