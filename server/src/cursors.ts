/**
 * Connection cursors come from clients, so a forged one (valid base64, a value of the wrong kind)
 * must be refused as bad input before it reaches a query, where PostgreSQL would reject it.
 */
import { decodeBase64, decodeCursorChunk } from '@pothos/core';
import { ValidationError } from './errors.js';
import { isUuid } from './ids.js';

/** A cursor over a uuid column. */
export const uuidCursor = (value: unknown) => isUuid(value);

/** A cursor over a bigint column. */
export const bigintCursor = (value: unknown) =>
  typeof value === 'bigint' || (typeof value === 'number' && Number.isSafeInteger(value));

/**
 * @throws ValidationError when `after` or `before` is not a Pothos prisma cursor (`GPC:`) of a
 * value `accepts` takes.
 */
export function checkCursors(
  args: { after?: string | null; before?: string | null },
  accepts: (value: unknown) => boolean,
): void {
  for (const name of ['after', 'before'] as const) {
    const cursor = args[name];
    if (cursor === null || cursor === undefined) continue;
    let valid = false;
    try {
      const decoded = decodeBase64(cursor);
      valid = decoded.startsWith('GPC:') && accepts(decodeCursorChunk(decoded.slice(4)));
    } catch {
      valid = false;
    }
    if (!valid) throw new ValidationError([{ path: [name], message: 'Not a cursor of this list' }]);
  }
}
