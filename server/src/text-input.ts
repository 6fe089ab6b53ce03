/**
 * Text inputs carry text: no control characters (NUL included: PostgreSQL refuses it and a DNS
 * name cannot hold it) and no lone surrogates (they would be stored as U+FFFD). Checked once
 * here for every GraphQL argument (a Pothos plugin) and for REST bodies (`findControlCharacter`),
 * so no resolver has to remember it.
 */
import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import {
  type GraphQLArgument,
  GraphQLError,
  type GraphQLFieldResolver,
  type GraphQLInputType,
  getNamedType,
  getNullableType,
  isInputObjectType,
  isListType,
  isScalarType,
  isUnionType,
} from 'graphql';
import { asErrorData, type FieldError, ValidationError } from './errors.js';

/** Control characters (C0, DEL, C1) and lone surrogates: never in a one-line text. */
const NOT_IN_TEXT = /[\p{Cc}\p{Cs}]/u;
/** Free JSON values may hold tab and line breaks, nothing else of the above. */
const NOT_IN_JSON = /(?![\t\n\r])[\p{Cc}\p{Cs}]/u;

export const CONTROL_CHARACTER_MESSAGE = 'Must not contain control characters';

/**
 * The path of the first string in a JSON value (keys included) with a character free text may not
 * hold, or null. Iterative, so a deeply nested value cannot exhaust the stack.
 */
export function findControlCharacter(value: unknown, path: string[] = []): string[] | null {
  const stack: [unknown, string[]][] = [[value, path]];
  while (stack.length > 0) {
    const [current, at] = stack.pop() as [unknown, string[]];
    if (typeof current === 'string') {
      if (NOT_IN_JSON.test(current)) return at;
    } else if (Array.isArray(current)) {
      current.forEach((item, index) => {
        stack.push([item, [...at, String(index)]]);
      });
    } else if (current !== null && typeof current === 'object') {
      for (const [key, item] of Object.entries(current)) {
        if (NOT_IN_JSON.test(key)) return [...at, key];
        stack.push([item, [...at, key]]);
      }
    }
  }
  return null;
}

/** Problems of one argument value against its GraphQL input type. */
function checkInput(value: unknown, type: GraphQLInputType, path: string[], problems: FieldError[]): void {
  if (value === null || value === undefined) return;
  const nullable = getNullableType(type);
  if (isListType(nullable)) {
    const items = Array.isArray(value) ? value : [value];
    items.forEach((item, index) => {
      checkInput(item, nullable.ofType, [...path, String(index)], problems);
    });
  } else if (isInputObjectType(nullable)) {
    const fields = nullable.getFields();
    for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
      const field = fields[name];
      if (field) checkInput(item, field.type, [...path, name], problems);
    }
  } else if (isScalarType(nullable) && nullable.name === 'JSON') {
    const at = findControlCharacter(value, path);
    if (at) problems.push({ path: at, message: CONTROL_CHARACTER_MESSAGE });
  } else if (typeof value === 'string' && NOT_IN_TEXT.test(value)) {
    // String, ID and any custom scalar that arrives as a string.
    problems.push({ path, message: CONTROL_CHARACTER_MESSAGE });
  }
}

function checkArgs(args: Record<string, unknown>, definitions: readonly GraphQLArgument[]): FieldError[] {
  const problems: FieldError[] = [];
  for (const definition of definitions) {
    checkInput(args[definition.name], definition.type, [definition.name], problems);
  }
  return problems;
}

/**
 * Checks every argument of every field before the field's own validation and resolver run. A
 * failure is a `ValidationError`: data for fields whose result union has it (the errors plugin,
 * or a union of its own), otherwise a GraphQL error with `extensions.code: VALIDATION_FAILED`.
 * The same presentation applies to the validation plugin's failures on fields without a union.
 */
export class TextInputPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapArgMappers(
    resolver: GraphQLFieldResolver<unknown, Types['Context'], object> | undefined,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> | undefined {
    if (!resolver || Object.keys(fieldConfig.args).length === 0) return resolver;
    // The errors plugin (outside this wrapper) turns a thrown ValidationError into data.
    const handledByErrorsPlugin = (fieldConfig.pothosOptions as { errors?: unknown }).errors !== undefined;
    return async (source, args, context, info) => {
      try {
        const field = info.parentType.getFields()[info.fieldName];
        const problems = field ? checkArgs(args as Record<string, unknown>, field.args) : [];
        if (problems.length > 0) throw new ValidationError(problems);
        return await resolver(source, args, context, info);
      } catch (error) {
        if (!(error instanceof ValidationError) || handledByErrorsPlugin) throw error;
        const returned = getNamedType(info.returnType);
        if (isUnionType(returned) && returned.getTypes().some((type) => type.name === 'ValidationError')) {
          return asErrorData(error);
        }
        throw new GraphQLError(error.message, { extensions: { code: error.code, fields: error.fields } });
      }
    };
  }
}

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      onrampTextInput: TextInputPlugin<Types>;
    }
  }
}

const pluginName = 'onrampTextInput';
SchemaBuilder.registerPlugin(pluginName, TextInputPlugin);
export default pluginName;
