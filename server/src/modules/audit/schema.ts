/** The audit log: written by each module in the same transaction as its action; read here. */
import { z } from 'zod';
import { builder } from '../../builder.js';
import type { Context } from '../../context.js';
import { bigintCursor, checkCursors } from '../../cursors.js';
import { type FieldError, invalidArguments } from '../../errors.js';
import type { Clinic, User } from '../../generated/central/client.js';
import { idSchema } from '../../ids.js';
import { batchLoad } from '../../loader.js';
import { ClinicRef } from '../provisioning/schema.js';
import { UserRef } from '../users/schema.js';

const filters = z.object({
  action: z
    .string()
    .max(100, { error: 'An action has at most 100 characters' })
    .regex(/^[a-z0-9_.]*$/, { error: 'An action is lower-case letters, digits, "_" and "."' })
    .nullish(),
  clinicId: idSchema('a clinic id').nullish(),
  actorId: idSchema('a user id').nullish(),
});

/** Rows of the viewer's scope (row-level security): a clinic admin sees only their clinic's people. */
const actorOf = (context: Context, id: string) =>
  batchLoad<User>(context, 'audit.actor', id, async (ids) => {
    const users = await context.scoped((tx) => tx.user.findMany({ where: { id: { in: ids } } }));
    return new Map(users.map((user) => [user.id, user]));
  });

const clinicOf = (context: Context, id: string) =>
  batchLoad<Clinic>(context, 'audit.clinic', id, async (ids) => {
    const clinics = await context.scoped((tx) => tx.clinic.findMany({ where: { id: { in: ids } } }));
    return new Map(clinics.map((clinic) => [clinic.id, clinic]));
  });

builder.prismaObject('AuditLog', {
  description: 'One entry of the audit log: who did what, when, to what.',
  fields: (t) => ({
    id: t.id({ description: 'The entry (a sequence number).', resolve: (entry) => entry.id.toString() }),
    at: t.expose('at', { type: 'DateTime', description: 'When it happened.' }),
    action: t.exposeString('action', {
      description: 'What happened, dotted, e.g. `auth.sign_in`, `client.added`.',
    }),
    actorId: t.exposeID('actorId', {
      nullable: true,
      description: 'Who did it; null when Onramp acted by itself (a reconciliation, a repair at sign-in).',
    }),
    actor: t.field({
      type: UserRef,
      nullable: true,
      description: 'The actor, while the account exists (deleted accounts are anonymised, not removed).',
      resolve: (entry, _args, context) => (entry.actorId ? actorOf(context, entry.actorId) : null),
    }),
    clinicId: t.exposeID('clinicId', { nullable: true, description: 'The clinic concerned, if any.' }),
    clinic: t.field({
      type: ClinicRef,
      nullable: true,
      description: 'The clinic, while it exists.',
      resolve: (entry, _args, context) => (entry.clinicId ? clinicOf(context, entry.clinicId) : null),
    }),
    clinicName: t.string({
      nullable: true,
      description:
        "The clinic's name: the clinic's own while it exists, else the name the entry recorded (a rolled-back registration).",
      resolve: async (entry, _args, context) => {
        const clinic = entry.clinicId ? await clinicOf(context, entry.clinicId) : undefined;
        if (clinic) return clinic.name;
        const data = entry.data as { clinicName?: unknown } | null;
        return typeof data?.clinicName === 'string' ? data.clinicName : null;
      },
    }),
    targetType: t.exposeString('targetType', {
      nullable: true,
      description: 'Kind of object acted on, e.g. `client_record`.',
    }),
    targetId: t.exposeString('targetId', { nullable: true, description: 'Id of the object acted on.' }),
    data: t.expose('data', { type: 'JSON', description: 'Details of the action; never secrets.' }),
  }),
});

builder.queryField('auditLog', (t) =>
  t.prismaConnection({
    type: 'AuditLog',
    cursor: 'id',
    description: 'Newest first. Super-admins see everything; clinic admins see their clinic only.',
    authScopes: { superAdmin: true, clinicAdminOfAny: true },
    args: {
      action: t.arg.string({
        description: 'Exact action, e.g. auth.sign_in, or a prefix ending in ".", e.g. auth.',
      }),
      clinicId: t.arg.id({ description: "One clinic's entries." }),
      actorId: t.arg.id({ description: "One actor's entries." }),
    },
    // Row-level security scopes the rows: everything for super-admins, the viewer's clinic otherwise.
    resolve: (query, _root, raw, context) => {
      // Checked here: a connection has no error union for a ValidationError to travel in.
      const parsed = filters.safeParse(raw);
      if (!parsed.success) {
        throw invalidArguments(
          parsed.error.issues.map(
            (issue): FieldError => ({ path: issue.path.map(String), message: issue.message }),
          ),
        );
      }
      checkCursors(raw, bigintCursor);
      const args = parsed.data;
      const action = args.action
        ? args.action.endsWith('.')
          ? { action: { startsWith: args.action } }
          : { action: args.action }
        : {};
      const where = {
        ...action,
        ...(args.clinicId ? { clinicId: String(args.clinicId) } : {}),
        ...(args.actorId ? { actorId: String(args.actorId) } : {}),
      };
      return context.scoped((tx) => tx.auditLog.findMany({ ...query, where, orderBy: { id: 'desc' } }));
    },
  }),
);
