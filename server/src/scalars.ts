import { GraphQLError, GraphQLScalarType, Kind, type ValueNode } from 'graphql';
import { isNestedDeeperThan, MAX_JSON_DEPTH } from './http/input.js';

export const DateTimeResolver = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  description: 'An ISO-8601 instant in UTC, e.g. 2026-11-21T09:30:00.000Z.',
  serialize(value) {
    const date = value instanceof Date ? value : new Date(String(value));
    if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime cannot represent an invalid date');
    return date.toISOString();
  },
  parseValue(value) {
    return parseDate(value);
  },
  parseLiteral(ast) {
    if (ast.kind !== Kind.STRING) throw new GraphQLError('DateTime must be a string');
    return parseDate(ast.value);
  },
});

function parseDate(value: unknown): Date {
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(value)) {
    throw new GraphQLError('DateTime must be an ISO-8601 string');
  }
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new GraphQLError('DateTime is not a valid date');
  return date;
}

const tooDeep = () =>
  new GraphQLError(`JSON values may be nested at most ${MAX_JSON_DEPTH} levels`, {
    extensions: { code: 'VALIDATION_FAILED' },
  });

export const JSONResolver = new GraphQLScalarType<unknown, unknown>({
  name: 'JSON',
  description: `Any JSON value, nested at most ${MAX_JSON_DEPTH} levels.`,
  serialize: (value) => value,
  // Resolvers walk these values (validation, storage): deep ones would overflow the stack.
  parseValue: (value) => {
    if (isNestedDeeperThan(value)) throw tooDeep();
    return value;
  },
  parseLiteral: (ast, variables) => literal(ast, variables, 0),
});

function literal(
  ast: ValueNode,
  variables: Record<string, unknown> | null | undefined,
  depth: number,
): unknown {
  switch (ast.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
      return ast.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(ast.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      if (depth >= MAX_JSON_DEPTH) throw tooDeep();
      return ast.values.map((value) => literal(value, variables, depth + 1));
    case Kind.OBJECT:
      if (depth >= MAX_JSON_DEPTH) throw tooDeep();
      return Object.fromEntries(
        ast.fields.map((field) => [field.name.value, literal(field.value, variables, depth + 1)]),
      );
    case Kind.VARIABLE: {
      const value = variables?.[ast.name.value];
      if (isNestedDeeperThan(value, MAX_JSON_DEPTH - depth)) throw tooDeep();
      return value;
    }
    default:
      throw new GraphQLError('Unsupported JSON literal');
  }
}
