/** Client records: the people and companies a clinic serves; they sign in by e-mail code. */
import { z } from 'zod';
import { builder } from '../../builder.js';
import { ConflictError } from '../../errors.js';
import { idSchema } from '../../ids.js';
import { recordAudit } from '../audit/record.js';
import { emailSchema } from '../users/validation.js';

const ClientKindEnum = builder.enumType('ClientKind', {
  description: 'Whether a client is a person or a company.',
  values: {
    PERSON: { description: 'A person: first and last name.' },
    COMPANY: { description: 'A company: legal name.' },
  } as const,
});

builder.prismaObject('ClientRecord', {
  description: 'A person or company a clinic serves; they sign in by e-mail code.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The record (UUID).' }),
    clinicId: t.exposeID('clinicId', { description: 'The clinic it belongs to.' }),
    kind: t.expose('kind', { type: ClientKindEnum, description: 'Person or company.' }),
    email: t.exposeString('email', { description: 'E-mail address, unique within the clinic.' }),
    firstName: t.exposeString('firstName', { nullable: true, description: 'A person’s first name.' }),
    lastName: t.exposeString('lastName', { nullable: true, description: 'A person’s last name.' }),
    legalName: t.exposeString('legalName', {
      nullable: true,
      description: 'A company’s legal name; null for a person.',
    }),
    hasAccount: t.boolean({
      description:
        'Whether this client signed in through this clinic (an account created from this record). Never about accounts elsewhere.',
      resolve: (record) => record.userId !== null,
    }),
  }),
});

const AddClientInput = builder.inputType('AddClientInput', {
  description: 'A client to add: a person needs first and last names, a company its legal name.',
  fields: (t) => ({
    clinicId: t.id({ required: true, description: 'The clinic (UUID) the caller administers.' }),
    kind: t.field({ type: ClientKindEnum, required: true, description: 'Person or company.' }),
    email: t.string({
      required: true,
      description: 'E-mail address; CONFLICT if the clinic already has it.',
    }),
    firstName: t.string({ description: 'Required for a person; 1 to 100 characters.' }),
    lastName: t.string({ description: 'Required for a person; 1 to 100 characters.' }),
    legalName: t.string({
      description: 'Required for a company; 1 to 200 characters; ignored for a person.',
    }),
  }),
});

const name = z.string().trim().min(1).max(100).nullish();
const addClientSchema = z
  .object({
    clinicId: idSchema('a clinic id'),
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
    args: { input: t.arg({ type: AddClientInput, required: true, description: 'The client to add.' }) },
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
          await recordAudit(tx, {
            action: 'client.added',
            actorId: context.viewer?.userId,
            clinicId: input.clinicId,
            targetType: 'client_record',
            targetId: record.id,
            ip: context.ip,
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
