/**
 * Reading untrusted request parts without throwing: percent-decoding of path segments and the
 * nesting depth of JSON (deep JSON overflows the stack of any recursive walk over it, and no
 * request of Onramp needs more than a few levels).
 */

/** Deepest JSON accepted in a request body or a GraphQL JSON value (objects and arrays). */
export const MAX_JSON_DEPTH = 32;

/** The decoded segment, or null when its percent-encoding is malformed (`%E0%A4%A`, `%ZZ`). */
export function decodePathSegment(raw: string): string | null {
  try {
    return decodeURIComponent(raw);
  } catch {
    return null;
  }
}

/** Whether `value` nests objects or arrays deeper than `max` levels; walks iteratively. */
export function isNestedDeeperThan(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop() as [unknown, number];
    if (current === null || typeof current !== 'object') continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}
