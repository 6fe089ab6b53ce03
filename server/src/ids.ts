/**
 * The one shape of an id Onramp accepts from outside: a UUID in its 8-4-4-4-12 hex form, either
 * case (PostgreSQL's uuid type reads both). Every check of an id, GraphQL argument, REST path or
 * token claim, goes through here, so they cannot disagree.
 */
import { z } from 'zod';

// No `i` flag: the pattern is published in the OpenAPI document, where flags do not exist.
export const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_PATTERN.test(value);
}

/** A zod id: `idSchema('a clinic id')` refuses anything else with "must be a clinic id (UUID)". */
export const idSchema = (what: string) => z.string().regex(UUID_PATTERN, { error: `must be ${what} (UUID)` });
