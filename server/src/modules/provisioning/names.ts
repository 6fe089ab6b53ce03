/**
 * Safe PostgreSQL names for a clinic's database and role. Names are derived from the clinic id
 * (unique, ASCII) plus a readable slug of the clinic name, so any Unicode name, quote or SQL
 * fragment yields a plain `[a-z0-9_]` identifier well under PostgreSQL's 63-byte limit.
 * Identifiers are still always quoted when used.
 */

const SLUG_LENGTH = 20;

/** "Clínica São José (Lyon)" → "clinica_sao_jose_lyo"; names without Latin letters give "". */
export function slug(name: string, maxLength = SLUG_LENGTH): string {
  return name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, maxLength)
    .replace(/_+$/, '');
}

function idPart(clinicId: string): string {
  const hex = clinicId.replaceAll('-', '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new Error('clinic id must be a UUID');
  return hex.slice(0, 16);
}

/** e.g. `clinic_sao_jose_3f2a9c1b7d4e8f01` (≤ 44 bytes). */
export function clinicDatabaseName(clinicId: string, clinicName: string): string {
  const readable = slug(clinicName);
  return readable ? `clinic_${readable}_${idPart(clinicId)}` : `clinic_${idPart(clinicId)}`;
}

/** The LOGIN role that alone may connect to the clinic's database. */
export function clinicRoleName(clinicId: string): string {
  return `clinic_role_${idPart(clinicId)}`;
}

/** Every clinic database and role Onramp creates starts with this, so orphans can be found. */
export const CLINIC_OBJECT_PREFIX = 'clinic_';
