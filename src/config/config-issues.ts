/**
 * Config issues in an operator's words: an unknown key with the nearest
 * known one ("did you mean"), a wrong type with what was there instead.
 * Pure; schema.ts maps zod's issues through these.
 */
import { z } from 'zod';
import { suggest } from '../base/suggest.ts';

/** `unknown key "sha256Ulr" (did you mean "sha256Url"?)`: the allowed keys are the schema's at that path. */
export function unknownKeys(root: z.ZodType, at: readonly PropertyKey[], keys: string[]): string {
  let schema: z.ZodType | undefined = root;
  for (const k of at) {
    while (schema && !(schema instanceof z.ZodObject) && !(schema instanceof z.ZodRecord) && 'unwrap' in schema) schema = (schema as { unwrap(): z.ZodType }).unwrap();
    schema = schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>)[String(k)] : schema instanceof z.ZodRecord ? (schema.valueType as z.ZodType) : undefined;
  }
  while (schema && !(schema instanceof z.ZodObject) && 'unwrap' in schema) schema = (schema as { unwrap(): z.ZodType }).unwrap();
  const known = schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
  return keys.map((k) => {
    const near = suggest(k, known);
    return `unknown key ${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`;
  }).join('; ');
}

export function valueAt(value: unknown, at: readonly PropertyKey[]): unknown {
  let v = value;
  for (const k of at) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** `expected a number, got the string "3"`: says what was there, not only its type. */
export function wrongType(expected: string, got: unknown): string {
  if (got === undefined) return `expected ${expected === 'object' ? 'an object' : `a ${expected}`}, got nothing (required)`;
  const what = got === null ? 'null' : Array.isArray(got) ? 'an array' : typeof got === 'object' ? 'an object' : `the ${typeof got} ${JSON.stringify(got).slice(0, 60)}`;
  return `expected ${expected === 'object' || expected === 'array' ? `an ${expected}` : `a ${expected}`}, got ${what}`;
}
