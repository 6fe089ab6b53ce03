/**
 * Request bodies of the onboarding service as zod schemas: they validate the REST bodies, the
 * GraphQL inputs (mapped onto the same shape) and are the source of the OpenAPI document
 * (openapi.ts), so the rules and their description cannot drift apart.
 */
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { type FieldError, ValidationError } from '../../errors.js';
import { UUID_PATTERN } from '../../ids.js';

extendZodWithOpenApi(z);

const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
/** Largest `metadata` accepted by complete, serialised. */
const MAX_METADATA_BYTES = 16 * 1024;

/** A required string field: absent or not a string reads `required`. */
const text = (required: string) => z.string({ error: required });

export const uuidSchema = z
  .string({ error: 'Must be a UUID' })
  .regex(UUID_PATTERN, 'Must be a UUID')
  .transform((value) => value.toLowerCase())
  .openapi({ format: 'uuid', example: '0f8fad5b-d9cb-469f-a165-70867728950e' });

export const applicationNameSchema = text('The application name is required')
  .trim()
  .min(1, 'The application name must be 1 to 120 characters')
  .max(120, 'The application name must be 1 to 120 characters')
  .openapi({
    description: 'Name of the integrating application, shown to operators',
    example: 'SIH Clinique',
  });

export const registerApplicationBody = z
  .object({ app_name: applicationNameSchema })
  .openapi('RegisterApplicationRequest', { example: { app_name: 'SIH Clinique' } });

export const startBody = z
  .object({
    email: text('The e-mail address is required')
      .trim()
      .toLowerCase()
      .min(1, { error: 'The e-mail address is required', abort: true })
      .max(254, { error: 'Enter a valid e-mail address', abort: true })
      .regex(EMAIL, 'Enter a valid e-mail address')
      .openapi({
        format: 'email',
        description: 'E-mail of the tenant administrator; trimmed and lower-cased',
        example: 'admin@clinique-du-lac.fr',
      }),
    organization_name: z
      .string({ error: 'The organization name must be a string' })
      .transform((value) => value.trim().replace(/\s+/g, ' '))
      .pipe(z.string().max(120, 'The organization name must be at most 120 characters'))
      .nullish()
      .transform((value) => (value ? value : null))
      .openapi({
        type: ['string', 'null'],
        maxLength: 120,
        description:
          'Name of the organization; the subdomain is derived from it (a random one when absent or reserved)',
        example: 'Clinique du Lac',
      }),
  })
  .openapi('StartOnboardingRequest', {
    example: { email: 'admin@clinique-du-lac.fr', organization_name: 'Clinique du Lac' },
  });

export const provisionBody = z
  .object({
    uuid: uuidSchema.openapi({ description: 'The uuid returned by start' }),
    generate_api_key: z
      .boolean({ error: 'Must be true or false' })
      .nullish()
      .transform((value) => value ?? false)
      .openapi({
        type: 'boolean',
        default: false,
        description: 'Also issue an api_key / api_secret pair for the tenant (shown once)',
      }),
  })
  .openapi('ProvisionOnboardingRequest', {
    example: { uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', generate_api_key: true },
  });

export const completeBody = z
  .object({
    tenant_id: text('The tenant id is required')
      .trim()
      .min(1, { error: 'The tenant id is required', abort: true })
      .max(200, 'The tenant id must be at most 200 characters')
      .openapi({
        description: "The tenant's identifier in the integrating application",
        example: 'tenant_12345',
      }),
    metadata: z
      .record(z.string(), z.unknown(), { error: 'The metadata must be a JSON object' })
      .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_METADATA_BYTES, {
        error: `The metadata must be at most ${MAX_METADATA_BYTES} bytes`,
      })
      .nullish()
      .transform((value) => value ?? {})
      .openapi({
        type: 'object',
        description: `Free JSON object kept with the onboarding (at most ${MAX_METADATA_BYTES} bytes serialised)`,
        example: { plan: 'premium', seats: 12 },
      }),
  })
  .openapi('CompleteOnboardingRequest', {
    example: { tenant_id: 'tenant_12345', metadata: { plan: 'premium' } },
  });

export type StartInput = { email: string; organizationName: string | null };
export type CompleteInput = { tenantId: string; metadata: Record<string, unknown> };

/**
 * Parses `raw` with `schema`. Each problem is reported at `pathOf(its path)`: the REST routes
 * keep the body's snake_case names, GraphQL maps them onto its argument names.
 * @throws ValidationError listing every invalid field (the first problem of each)
 */
export function parseInput<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  pathOf: (path: string[]) => string[] = (path) => path,
): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const errors: FieldError[] = [];
  const seen = new Set<string>();
  for (const issue of parsed.error.issues) {
    const path = pathOf(issue.path.map(String));
    const key = path.join('.');
    if (seen.has(key)) continue;
    seen.add(key);
    errors.push({ path, message: issue.message });
  }
  throw new ValidationError(errors);
}

/** Maps a body path onto GraphQL argument names: `renamed({ tenant_id: 'tenantId' }, ['input'])`. */
export function renamed(names: Record<string, string>, prefix: string[] = []) {
  return (path: string[]) => [...prefix, ...path.map((segment) => names[segment] ?? segment)];
}

/** @throws ValidationError listing every problem */
export function validateStart(body: unknown, pathOf?: (path: string[]) => string[]): StartInput {
  const parsed = parseInput(startBody, body, pathOf);
  return { email: parsed.email, organizationName: parsed.organization_name };
}

/** @throws ValidationError listing every problem */
export function validateComplete(body: unknown, pathOf?: (path: string[]) => string[]): CompleteInput {
  const parsed = parseInput(completeBody, body, pathOf);
  return { tenantId: parsed.tenant_id, metadata: parsed.metadata };
}

/** @throws ValidationError */
export function validateUuid(raw: unknown, path: string[]): string {
  return parseInput(uuidSchema, raw, () => path);
}
