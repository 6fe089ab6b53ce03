/** GraphQL of fleet rollouts (docs/decisions/047): super-admins start, pause, resume, abort, watch. */
import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import { builder } from '../../builder.js';
import type { Context } from '../../context.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { idSchema } from '../../ids.js';
import type { RolloutClinicView, RolloutCounts, RolloutView } from './service.js';

const rolloutId = idSchema('a rollout id');

const actor = (context: Context) => ({ userId: context.viewer?.userId ?? null, ip: context.ip });

const RolloutStatusEnum = builder.enumType('RolloutStatus', {
  description: 'Where a rollout stands.',
  values: {
    RUNNING: { description: 'Upgrading clinics.' },
    PAUSED: {
      description:
        'Stopped for a look (after the canaries, failures past the threshold, or an operator) until resumeRollout.',
    },
    COMPLETED: { description: 'Every clinic was tried: upgraded or failed.' },
    ABORTED: { description: 'Stopped for good; clinics not reached stay on their version.' },
  } as const,
});

const RolloutClinicStateEnum = builder.enumType('RolloutClinicState', {
  description: "One clinic's place in a rollout.",
  values: {
    PENDING: { description: 'Not upgraded yet (a busy clinic waits here for its next attempt).' },
    RUNNING: { description: 'Its UPGRADE run is under way.' },
    UPGRADED: { description: 'Upgraded and HEALTHY.' },
    FAILED: { description: 'Its upgrade failed; it stays on its version (see `error`, `dbStatus`).' },
  } as const,
});

const RolloutCountsRef = builder.objectRef<RolloutCounts>('RolloutCounts').implement({
  description: "A rollout's clinics by outcome.",
  fields: (t) => ({
    total: t.exposeInt('total', { description: 'Clinics in the rollout.' }),
    done: t.exposeInt('done', { description: 'Upgraded.' }),
    failed: t.exposeInt('failed', { description: 'Failed (each stays on its version).' }),
    remaining: t.exposeInt('remaining', { description: 'Not upgraded yet, including those running.' }),
    running: t.exposeInt('running', { description: 'Being upgraded now.' }),
  }),
});

const RolloutClinicRef = builder.objectRef<RolloutClinicView>('RolloutClinic').implement({
  description: 'One clinic of a rollout.',
  fields: (t) => ({
    clinicId: t.exposeID('clinicId', { description: 'The clinic.' }),
    clinicName: t.exposeString('clinicName', { nullable: true, description: 'Its name (null once purged).' }),
    position: t.exposeInt('position', { description: 'Its place in the upgrade order, from 0.' }),
    canary: t.exposeBoolean('canary', { description: 'Upgraded among the canaries, before the rest.' }),
    state: t.field({
      type: RolloutClinicStateEnum,
      description: 'Where it stands.',
      resolve: (c) => c.state,
    }),
    attempts: t.exposeInt('attempts', { description: 'UPGRADE runs so far (a busy clinic is tried again).' }),
    fromVersion: t.exposeString('fromVersion', {
      nullable: true,
      description: 'Its clinic schema version when the rollout started.',
    }),
    error: t.exposeString('error', {
      nullable: true,
      description: 'Why its last attempt failed (or was put off, when busy).',
    }),
    dbStatus: t.exposeString('dbStatus', {
      nullable: true,
      description: 'Its database health after its upgrade (a DbStatus: DEGRADED when it stayed behind).',
    }),
    runId: t.exposeID('runId', { nullable: true, description: 'Its last UPGRADE run (provisioningRun).' }),
    updatedAt: t.field({ type: 'DateTime', description: 'Its last change.', resolve: (c) => c.updatedAt }),
  }),
});

const RolloutRef = builder.objectRef<RolloutView>('Rollout').implement({
  description:
    'A fleet rollout: every READY clinic behind the clinic schema upgraded as UPGRADE runs, canaries first.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Rollout id (UUID).' }),
    status: t.field({ type: RolloutStatusEnum, description: 'Where it stands.', resolve: (r) => r.status }),
    targetVersion: t.exposeString('targetVersion', {
      description: 'The clinic schema version it brings clinics to.',
    }),
    canary: t.exposeInt('canary', { description: 'Clinics upgraded first, before the rest.' }),
    continueWhenHealthy: t.exposeBoolean('continueWhenHealthy', {
      description: 'Goes on after the canaries by itself when they are HEALTHY (else pauses for a look).',
    }),
    concurrency: t.exposeInt('concurrency', { description: 'Clinics upgraded at once.' }),
    failureThreshold: t.exposeInt('failureThreshold', {
      description: 'Failed clinics tolerated since the last resume; one more pauses it.',
    }),
    pauseReason: t.exposeString('pauseReason', { nullable: true, description: 'Why it is PAUSED.' }),
    startedBy: t.exposeID('startedBy', {
      nullable: true,
      description: 'The operator who started it (null: Onramp at start, CLINIC_ROLLOUT_AT_START).',
    }),
    createdAt: t.field({ type: 'DateTime', description: 'When it started.', resolve: (r) => r.createdAt }),
    updatedAt: t.field({
      type: 'DateTime',
      description: 'Its last status change.',
      resolve: (r) => r.updatedAt,
    }),
    finishedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When it COMPLETED or was ABORTED.',
      resolve: (r) => r.finishedAt,
    }),
    counts: t.field({
      type: RolloutCountsRef,
      description: 'Its clinics by outcome.',
      resolve: (r) => r.counts,
    }),
    clinics: t.field({
      type: [RolloutClinicRef],
      description: 'Its clinics in upgrade order, canaries first.',
      resolve: (r) => r.clinics,
    }),
  }),
});

const StartRolloutInput = builder.inputType('StartRolloutInput', {
  description: 'How to roll the current clinic schema out.',
  fields: (t) => ({
    canary: t.int({ description: 'Clinics upgraded first, alone, 0 to 1000. Default 1.' }),
    continueWhenHealthy: t.boolean({
      description:
        'After the canaries: go on when all are HEALTHY (true), or pause for a look (false, the default).',
    }),
    concurrency: t.int({ description: 'Clinics upgraded at once, 1 to 32. Default 4.' }),
    failureThreshold: t.int({
      description: 'Failed clinics tolerated (since the last resume) before it pauses itself. Default 0.',
    }),
  }),
});

builder.queryFields((t) => ({
  rollouts: t.field({
    type: [RolloutRef],
    description: 'Super-admins: the rollouts, newest first.',
    authScopes: { operator: true },
    args: {
      first: t.arg.int({
        defaultValue: 20,
        validate: z.number().int().min(1).max(100),
        description: 'How many, 1 to 100.',
      }),
    },
    resolve: (_root, { first }, context) => context.deps.rollouts.list(first ?? 20),
  }),
  rollout: t.field({
    type: RolloutRef,
    nullable: true,
    description: 'Super-admins: one rollout, or null.',
    authScopes: { operator: true },
    args: { id: t.arg.id({ required: true, validate: rolloutId, description: 'Rollout id (UUID).' }) },
    resolve: (_root, { id }, context) =>
      context.deps.rollouts.get(String(id)).catch((error: unknown) => {
        if (error instanceof NotFoundError) return null;
        throw error;
      }),
  }),
}));

builder.mutationFields((t) => ({
  startRollout: t.field({
    type: RolloutRef,
    description:
      'Super-admins: upgrades every READY clinic behind the current clinic schema, canaries first, as UPGRADE runs. ' +
      'VALIDATION_FAILED for options out of range; CONFLICT while another rollout is RUNNING or PAUSED.',
    authScopes: { operator: true },
    errors: { types: [ConflictError] },
    args: {
      input: t.arg({ type: StartRolloutInput, description: 'Its options (all have defaults).' }),
    },
    resolve: (_root, { input }, context) =>
      context.deps.rollouts.startRollout(
        {
          canary: input?.canary ?? undefined,
          continueWhenHealthy: input?.continueWhenHealthy ?? undefined,
          concurrency: input?.concurrency ?? undefined,
          failureThreshold: input?.failureThreshold ?? undefined,
        },
        actor(context),
      ),
  }),
  pauseRollout: t.field({
    type: RolloutRef,
    description:
      'Super-admins: stops picking clinics (those being upgraded finish) until resumeRollout. NOT_FOUND; CONFLICT when not RUNNING.',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { id: t.arg.id({ required: true, validate: rolloutId, description: 'Rollout id (UUID).' }) },
    resolve: (_root, { id }, context) => context.deps.rollouts.pauseRollout(String(id), actor(context)),
  }),
  resumeRollout: t.field({
    type: RolloutRef,
    description:
      'Super-admins: goes on after a pause (past the canaries; the failure threshold counts afresh). NOT_FOUND; ' +
      "CONFLICT when not PAUSED or when it targets a clinic schema other than this deployment's.",
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { id: t.arg.id({ required: true, validate: rolloutId, description: 'Rollout id (UUID).' }) },
    resolve: (_root, { id }, context) => context.deps.rollouts.resumeRollout(String(id), actor(context)),
  }),
  abortRollout: t.field({
    type: RolloutRef,
    description:
      'Super-admins: stops the rollout for good; clinics not reached stay on their version. NOT_FOUND; CONFLICT when it already ended.',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { id: t.arg.id({ required: true, validate: rolloutId, description: 'Rollout id (UUID).' }) },
    resolve: (_root, { id }, context) => context.deps.rollouts.abortRollout(String(id), actor(context)),
  }),
}));

builder.subscriptionFields((t) => ({
  rolloutProgress: t.field({
    type: RolloutRef,
    description:
      "Super-admins: a rollout as it is now, each time it changes (its status, a clinic's state); of one rollout when `id` is given.",
    authScopes: { operator: true },
    args: { id: t.arg.id({ validate: rolloutId, description: 'Only this rollout (UUID).' }) },
    subscribe: (_root, { id }, context) =>
      pipe(
        context.deps.events.pubsub.subscribe('rollouts'),
        filter((event) => !id || event.rolloutId === String(id)),
      ),
    resolve: (event, _args, context) => context.deps.rollouts.get(event.rolloutId),
  }),
}));
