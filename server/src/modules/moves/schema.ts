import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import { builder } from '../../builder.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { idSchema } from '../../ids.js';
import { ProvisioningFailedError } from '../provisioning/index.js';
import { ClinicRef } from '../provisioning/schema.js';
import type { DatabaseServerView, MoveResult } from './service.js';

const MoveTableCountRef = builder.objectRef<{ table: string; rows: number }>('MoveTableCount').implement({
  description: 'Rows of one clinic table, counted on both copies during the write freeze.',
  fields: (t) => ({
    table: t.exposeString('table', { description: 'Table name.' }),
    rows: t.exposeInt('rows', { description: 'Rows on each copy (they were equal).' }),
  }),
});

const MoveClinicSuccessRef = builder.objectRef<MoveResult>('MoveClinicSuccess').implement({
  description: "The clinic's database lives on another server now; its copy on the old one is quarantined.",
  fields: (t) => ({
    runId: t.exposeID('runId', { description: 'The MOVE run (provisioningRun), with its steps.' }),
    clinic: t.prismaField({
      type: ClinicRef,
      description: 'The clinic, on its new server.',
      resolve: (query, result, _args, context) =>
        context.scoped((tx) => tx.clinic.findUniqueOrThrow({ ...query, where: { id: result.clinicId } })),
    }),
    from: t.exposeString('from', { description: 'Name of the server it left.' }),
    to: t.exposeString('to', { description: 'Name of the server it lives on now.' }),
    downtimeMs: t.exposeInt('downtimeMs', {
      description:
        "Milliseconds the clinic could not write: from the source's write freeze to the switch of its central record.",
    }),
    rowsVerified: t.field({
      type: [MoveTableCountRef],
      description: 'Rows of each table, equal on both copies before the switch.',
      resolve: (result) => result.rowsVerified,
    }),
  }),
});

const DatabaseServerRef = builder.objectRef<DatabaseServerView>('DatabaseServer').implement({
  description: 'A PostgreSQL server configured to hold clinic databases (CLINIC_DATABASE_SERVERS).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Its id (UUID), as moveClinic accepts.' }),
    name: t.exposeString('name', {
      description: 'Its name (its address when first recorded), as moveClinic accepts.',
    }),
    address: t.exposeString('address', { description: '`host:port` it was last reached at.' }),
    reachable: t.exposeBoolean('reachable', { description: 'Whether a configured URL reaches it now.' }),
    reason: t.exposeString('reason', {
      nullable: true,
      description: 'Why it cannot be reached; null when it can.',
    }),
    held: t.exposeBoolean('held', {
      description:
        'Whether it is held: first seen at the address of a recorded server with live clinics that no ' +
        'URL identified, it gets no clinic until that server is found elsewhere or it is accepted ' +
        '(acceptDatabaseServer; docs/decisions/090). The reason says which.',
    }),
    heldFor: t.exposeString('heldFor', {
      nullable: true,
      description:
        'While held: the name of the recorded server it stands in for, whose live clinics are at ' +
        'stake (accepting means that server is not coming back at this address); null when not held.',
    }),
    clinics: t.exposeInt('clinics', { description: 'Clinics whose database it holds.' }),
  }),
});

builder.queryFields((t) => ({
  databaseServers: t.field({
    type: [DatabaseServerRef],
    authScopes: { operator: true },
    description:
      'Super-admins: every recorded clinic database server, oldest first (the targets of moveClinic).',
    resolve: (_root, _args, context) => context.deps.moves.servers(),
  }),
}));

builder.mutationFields((t) => ({
  acceptDatabaseServer: t.field({
    type: DatabaseServerRef,
    description:
      'Super-admins: uses a held clinic database server (databaseServers { held }) from now on, on ' +
      'every instance: the decision that it is meant to stay although a recorded server with live ' +
      'clinics was expected at its address (docs/decisions/090). Audited. NOT_FOUND when there is no ' +
      'such server; CONFLICT when it is not held.',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: {
      server: t.arg.string({
        required: true,
        validate: z.string().min(1).max(300),
        description: 'The held server: its name or id (see databaseServers).',
      }),
    },
    resolve: async (_root, { server }, context) => {
      const accepted = await context.deps.provisioning.acceptServer(server, {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      });
      const view = (await context.deps.moves.servers()).find((row) => row.id === accepted.id);
      if (!view) throw new NotFoundError('database server');
      return view;
    },
  }),
  moveClinic: t.field({
    type: MoveClinicSuccessRef,
    description:
      "Super-admins: moves a READY clinic's database to another configured server online, as a MOVE " +
      'run streamed on provisioningProgress (logical replication, then a short write freeze, then ' +
      'the switch; docs/decisions/049). NOT_FOUND when there is no such clinic or server; CONFLICT ' +
      'when the clinic is not READY or already there, a move of it is under way, a server is ' +
      'unreachable or a copy of it is kept on the target; PROVISIONING_FAILED when a step failed ' +
      'and the move was undone (the clinic stays where it was, writable).',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError, ProvisioningFailedError] },
    args: {
      clinicId: t.arg.id({
        required: true,
        validate: idSchema('a clinic id'),
        description: 'The clinic to move (UUID).',
      }),
      server: t.arg.string({
        required: true,
        validate: z.string().min(1).max(300),
        description: 'The target server: its name or id (see databaseServers).',
      }),
    },
    resolve: (_root, { clinicId, server }, context) =>
      context.deps.moves.moveClinic(String(clinicId), server, {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
}));

builder.subscriptionFields((t) => ({
  databaseServerChanged: t.field({
    type: DatabaseServerRef,
    description:
      'Super-admins: a clinic database server as it is now, each time it is held or its hold ends ' +
      '(accepted by an operator from any instance or a shell, or released when its conflict is ' +
      'gone; docs/decisions/090, 094). Sent by the central database at commit, so every instance ' +
      'sees every path; read databaseServers again after a reconnection.',
    authScopes: { operator: true },
    subscribe: (_root, _args, context) =>
      pipe(
        context.deps.events.pubsub.subscribe('databaseServers'),
        filter((event) => typeof event?.serverId === 'string'),
      ),
    resolve: async (event, _args, context) => {
      const view = (await context.deps.moves.servers()).find((row) => row.id === event.serverId);
      // Rows of database_servers are never deleted: an unknown id is a forged or garbled event.
      if (!view) throw new NotFoundError('database server');
      return view;
    },
  }),
}));
