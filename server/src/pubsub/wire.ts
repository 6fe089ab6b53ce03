/**
 * How event payloads cross process boundaries (Redis, PostgreSQL NOTIFY): JSON, except that a
 * Date arrives as a Date. A subscriber in another instance then sees the payload its publisher
 * built, and no producer converts dates to text for the bus (docs/decisions/043).
 */

const DATE = '$date';

/** JSON text of `value`; every Date in it is tagged so that {@link parse} revives it. */
export function stringify(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, converted: unknown) {
    // `converted` is after Date.prototype.toJSON; the holder still has the Date itself.
    const raw = key === '' ? value : this[key];
    return raw instanceof Date ? { [DATE]: converted } : converted;
  });
}

/** The value {@link stringify} wrote, with its Dates. */
export function parse(text: string): unknown {
  return JSON.parse(text, (_key, value: unknown) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      const keys = Object.keys(value);
      const tagged = (value as Record<string, unknown>)[DATE];
      if (keys.length === 1 && typeof tagged === 'string') return new Date(tagged);
    }
    return value;
  });
}

/** The serializer of Yoga's Redis event target. */
export const wire = { stringify, parse };
