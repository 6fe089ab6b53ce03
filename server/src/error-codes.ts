/**
 * Every code of an expected failure, gathered from the modules that own them (each declares its
 * codes beside its error classes). The GraphQL `ErrorCode` enum (builder.ts) and the REST status
 * of each code (http/rest.ts) are read from here, so a new code needs one entry in one module.
 */
import { COMMON_ERROR_CODES } from './errors.js';
import { AUTH_ERROR_CODES } from './modules/auth/errors.js';
import { CONSENT_ERROR_CODES } from './modules/consents/errors.js';
import { MEMBER_ERROR_CODES } from './modules/members/errors.js';
import { USER_ERROR_CODES } from './modules/users/errors.js';

export const ERROR_CODE_TABLE = {
  ...COMMON_ERROR_CODES,
  ...AUTH_ERROR_CODES,
  ...USER_ERROR_CODES,
  ...MEMBER_ERROR_CODES,
  ...CONSENT_ERROR_CODES,
};

export type ErrorCode = keyof typeof ERROR_CODE_TABLE;

export const ERROR_CODES = Object.keys(ERROR_CODE_TABLE) as ErrorCode[];
