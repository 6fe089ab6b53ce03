/**
 * Input rules of the onboarding service, shared by REST (snake_case paths) and GraphQL
 * (camelCase paths): each transport names the fields, the rules are the same.
 */
import { type FieldError, ValidationError } from '../../errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMAIL = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
/** Largest `metadata` accepted by complete, serialised. */
const MAX_METADATA_BYTES = 16 * 1024;

export interface StartInput {
  email: string;
  organizationName: string | null;
}

export interface CompleteInput {
  tenantId: string;
  metadata: Record<string, unknown>;
}

type Paths<K extends string> = Record<K, string[]>;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

function fail(errors: FieldError[]): void {
  if (errors.length > 0) throw new ValidationError(errors);
}

/** @throws ValidationError listing every problem */
export function validateStart(
  raw: { email?: unknown; organizationName?: unknown },
  paths: Paths<'email' | 'organizationName'>,
): StartInput {
  const errors: FieldError[] = [];
  const email = typeof raw.email === 'string' ? raw.email.trim().toLowerCase() : '';
  if (typeof raw.email !== 'string' || email === '') {
    errors.push({ path: paths.email, message: 'The e-mail address is required' });
  } else if (email.length > 254 || !EMAIL.test(email)) {
    errors.push({ path: paths.email, message: 'Enter a valid e-mail address' });
  }
  let organizationName: string | null = null;
  if (raw.organizationName !== undefined && raw.organizationName !== null) {
    if (typeof raw.organizationName !== 'string') {
      errors.push({ path: paths.organizationName, message: 'The organization name must be a string' });
    } else {
      const trimmed = raw.organizationName.trim().replace(/\s+/g, ' ');
      if (trimmed.length > 120) {
        errors.push({
          path: paths.organizationName,
          message: 'The organization name must be at most 120 characters',
        });
      }
      organizationName = trimmed === '' ? null : trimmed;
    }
  }
  fail(errors);
  return { email, organizationName };
}

/** @throws ValidationError */
export function validateUuid(raw: unknown, path: string[]): string {
  if (!isUuid(raw)) throw new ValidationError([{ path, message: 'Must be a UUID' }]);
  return raw.toLowerCase();
}

/** @throws ValidationError */
export function validateBoolean(raw: unknown, path: string[], fallback: boolean): boolean {
  if (raw === undefined || raw === null) return fallback;
  if (typeof raw !== 'boolean') throw new ValidationError([{ path, message: 'Must be true or false' }]);
  return raw;
}

/** @throws ValidationError listing every problem */
export function validateComplete(
  raw: { tenantId?: unknown; metadata?: unknown },
  paths: Paths<'tenantId' | 'metadata'>,
): CompleteInput {
  const errors: FieldError[] = [];
  const tenantId = typeof raw.tenantId === 'string' ? raw.tenantId.trim() : '';
  if (typeof raw.tenantId !== 'string' || tenantId === '') {
    errors.push({ path: paths.tenantId, message: 'The tenant id is required' });
  } else if (tenantId.length > 200) {
    errors.push({ path: paths.tenantId, message: 'The tenant id must be at most 200 characters' });
  }
  let metadata: Record<string, unknown> = {};
  if (raw.metadata !== undefined && raw.metadata !== null) {
    if (typeof raw.metadata !== 'object' || Array.isArray(raw.metadata)) {
      errors.push({ path: paths.metadata, message: 'The metadata must be a JSON object' });
    } else if (Buffer.byteLength(JSON.stringify(raw.metadata)) > MAX_METADATA_BYTES) {
      errors.push({
        path: paths.metadata,
        message: `The metadata must be at most ${MAX_METADATA_BYTES} bytes`,
      });
    } else {
      metadata = raw.metadata as Record<string, unknown>;
    }
  }
  fail(errors);
  return { tenantId, metadata };
}
