/** The schema's single entry point: every module's schema file, then toSchema(). */
import { lexicographicSortSchema, printSchema } from 'graphql';
import { builder } from './builder.js';
import './modules/account/schema.js';
import './modules/audit/schema.js';
import './modules/auth/schema.js';
import './modules/auth/sign-in-links-schema.js';
import './modules/clients/schema.js';
import './modules/consents/schema.js';
import './modules/health/schema.js';
import './modules/mail/schema.js';
import './modules/members/schema.js';
import './modules/moves/schema.js';
import './modules/onboarding/schema.js';
import './modules/provisioning/schema.js';
import './modules/registration/schema.js';
import './modules/rollouts/schema.js';
import './modules/users/schema.js';
import './modules/webhooks/schema.js';

export const schema = builder.toSchema();

/** SDL as committed in server/schema.graphql. */
export function printedSchema(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
