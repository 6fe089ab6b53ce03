/**
 * The Pothos builder: plugins, Context, scalars, and the `Error` interface every expected
 * failure implements.
 */
import SchemaBuilder from '@pothos/core';
import ErrorsPlugin from '@pothos/plugin-errors';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import ValidationPlugin from '@pothos/plugin-validation';
import type { Context } from './context.js';
import { ERROR_CODE_TABLE, ERROR_CODES, type ErrorCode } from './error-codes.js';
import {
  asErrorData,
  ConflictError,
  type FieldError,
  forbidden,
  isErrorData,
  NotFoundError,
  type OnrampError,
  unauthenticated,
  ValidationError,
} from './errors.js';
import type PrismaTypes from './generated/central/pothos-types.js';
import { getDatamodel } from './generated/central/pothos-types.js';
import { DateTimeResolver, JSONResolver } from './scalars.js';
import TextInputPlugin from './text-input.js';

export { asErrorData, isErrorData };

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  AuthScopes: {
    authenticated: boolean;
    superAdmin: boolean;
    /** Platform operations (clinic health, repair, runs, zombies): super-admins. */
    operator: boolean;
    /**
     * Development tools (devMailbox, devSmsOutbox, injectFault): super-admins outside production.
     * The mailbox holds sign-in codes, so an open one would be an open super-admin session.
     */
    devTools: boolean;
    /** An admin of the clinic with this id (or a super-admin). */
    clinicAdmin: string;
    /** An admin of some clinic (their own clinic's data only; resolvers scope it). */
    clinicAdminOfAny: boolean;
    /** An application of the onboarding service, by its X-Master-Key header. */
    application: boolean;
  };
  Scalars: {
    DateTime: { Input: Date; Output: Date };
    JSON: { Input: unknown; Output: unknown };
  };
  DefaultFieldNullability: false;
}>({
  defaultFieldNullability: false,
  // TextInputPlugin after ValidationPlugin: its check runs first (Pothos applies them in reverse).
  plugins: [ScopeAuthPlugin, ErrorsPlugin, ValidationPlugin, TextInputPlugin, PrismaPlugin, RelayPlugin],
  scopeAuth: {
    // Subscriptions are authorized when they start (an error, then complete), not per event.
    authorizeOnSubscribe: true,
    authScopes: (context) => ({
      authenticated: context.viewer !== null,
      superAdmin: context.viewer?.role === 'SUPER_ADMIN',
      operator: context.viewer?.role === 'SUPER_ADMIN',
      devTools: context.viewer?.role === 'SUPER_ADMIN' && context.deps.config.env !== 'production',
      application: context.application !== null,
      clinicAdminOfAny: context.viewer?.role === 'CLINIC_ADMIN' && context.viewer.clinicId !== null,
      clinicAdmin: (clinicId: string) =>
        context.viewer?.role === 'SUPER_ADMIN' ||
        (context.viewer?.role === 'CLINIC_ADMIN' && context.viewer.clinicId === clinicId),
    }),
    unauthorizedError: (_parent, context) => (context.viewer ? forbidden() : unauthenticated()),
  },
  errors: {
    defaultTypes: [ValidationError],
    defaultUnionOptions: {
      description: 'The success type, or one of the expected failures (they implement `Error`).',
    },
    directResult: true,
    // Validation failures become ValidationError data instead of GraphQL errors. They are
    // returned before authorization runs; they reveal only the input's own problems.
    unsafelyHandleInputErrors: true,
  },
  validation: {
    validationError: (result) =>
      new ValidationError(
        result.issues.map(
          (issue): FieldError => ({
            path: (issue.path ?? []).map((part) => String(typeof part === 'object' ? part.key : part)),
            message: issue.message,
          }),
        ),
      ),
  },
  prisma: {
    // Relations load through the request's row-level-secured connection (decision 011).
    client: (context) => context.scoped.client,
    dmmf: getDatamodel(),
    exposeDescriptions: true,
    filterConnectionTotalCount: true,
  },
  relay: {
    pageInfoTypeOptions: { description: 'Where a page sits in its list (Relay cursor connections).' },
    hasNextPageFieldOptions: { description: 'Whether more items follow this page.' },
    hasPreviousPageFieldOptions: { description: 'Whether items precede this page.' },
    startCursorFieldOptions: { description: "The first item's cursor (pass it as `before`)." },
    endCursorFieldOptions: { description: "The last item's cursor (pass it as `after`)." },
    cursorFieldOptions: { description: "This item's position, for `after` or `before`." },
    nodeFieldOptions: { description: 'The item.' },
    edgesFieldOptions: { description: 'The items of this page with their cursors.' },
    pageInfoFieldOptions: { description: 'Cursors and whether more pages exist.' },
    firstArgOptions: { description: 'How many items from the start (or after `after`).' },
    afterArgOptions: { description: 'A cursor: items after this one.' },
    lastArgOptions: { description: 'How many items from the end (or before `before`).' },
    beforeArgOptions: { description: 'A cursor: items before this one.' },
    defaultConnectionTypeOptions: { description: 'A page of a list (Relay cursor connection).' },
    defaultEdgeTypeOptions: { description: 'One item of a page, with its cursor.' },
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
});

builder.addScalarType('DateTime', DateTimeResolver);
builder.addScalarType('JSON', JSONResolver);

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const ErrorCodeEnum = builder.enumType('ErrorCode', {
  description: 'Codes of expected failures (types implementing `Error`).',
  values: Object.fromEntries(
    ERROR_CODES.map((code) => [code, { description: ERROR_CODE_TABLE[code].description }]),
  ) as Record<ErrorCode, { description: string }>,
});

export const ErrorInterface = builder.interfaceRef<OnrampError>('Error').implement({
  description: 'An expected failure. `message` is safe to show to the user.',
  fields: (t) => ({
    code: t.field({
      type: ErrorCodeEnum,
      description: 'What went wrong, for programs.',
      resolve: (error) => error.code,
    }),
    message: t.exposeString('message', { description: 'What went wrong, in English, for people.' }),
  }),
});

const FieldErrorRef = builder.objectRef<FieldError>('FieldError').implement({
  description: 'One invalid input and why.',
  fields: (t) => ({
    path: t.exposeStringList('path', {
      description: 'Path of the invalid input, e.g. ["input", "adminEmail"].',
    }),
    message: t.exposeString('message', { description: 'Why it is invalid, for people.' }),
  }),
});

builder.objectType(ValidationError, {
  name: 'ValidationError',
  description: 'Some inputs are invalid (`VALIDATION_FAILED`); every one is listed.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ValidationError || isErrorData(value, 'ValidationError'),
  fields: (t) => ({
    fields: t.field({
      type: [FieldErrorRef],
      description: 'Every invalid input, checked together.',
      resolve: (error) => error.fields,
    }),
  }),
});

/** Registers an expected-failure class as a GraphQL type carrying just `code` and `message`. */
export function errorType(
  ErrorClass: new (...args: never[]) => OnrampError,
  name: string,
  description: string,
): void {
  // Typed as one concrete subclass: Pothos needs a constructible shape; the type adds no fields.
  builder.objectType(ErrorClass as unknown as typeof ConflictError, {
    name,
    description,
    interfaces: [ErrorInterface],
    isTypeOf: (value) => value instanceof ErrorClass || isErrorData(value, name),
    fields: () => ({}),
  });
}

errorType(NotFoundError, 'NotFoundError', ERROR_CODE_TABLE.NOT_FOUND.description);
errorType(ConflictError, 'ConflictError', ERROR_CODE_TABLE.CONFLICT.description);
