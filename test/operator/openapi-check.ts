/**
 * A small checker of values against a CRD's structural OpenAPI v3 schema, as the API server applies it:
 * types, int-or-string, required, enum, bounds, patterns, and unknown fields (which the API server would
 * silently prune, so a builder emitting them loses data). Returns readable errors, empty when valid.
 */
type Schema = Record<string, any>;

export function checkAgainstSchema(schema: Schema, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  const fail = (msg: string) => errors.push(`${path}: ${msg}`);
  if (schema['x-kubernetes-int-or-string']) {
    if (!(typeof value === 'string' || Number.isInteger(value))) fail(`must be an integer or a string, got ${JSON.stringify(value)}`);
    return errors;
  }
  if (schema.enum && !schema.enum.includes(value)) fail(`must be one of ${JSON.stringify(schema.enum)}, got ${JSON.stringify(value)}`);
  switch (schema.type) {
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) return [...errors, `${path}: must be an object`];
      const obj = value as Record<string, unknown>;
      for (const key of schema.required ?? []) if (obj[key] === undefined) fail(`required field "${key}" is missing`);
      const props: Schema | undefined = schema.properties;
      if (!props && !schema.additionalProperties) return errors; // free-form (e.g. metadata)
      for (const [key, v] of Object.entries(obj)) {
        if (v === undefined) continue;
        const sub = props?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
        if (!sub) {
          if (!schema['x-kubernetes-preserve-unknown-fields']) fail(`unknown field "${key}" (the API server would drop it)`);
          continue;
        }
        errors.push(...checkAgainstSchema(sub, v, `${path}.${key}`));
      }
      return errors;
    }
    case 'array':
      if (!Array.isArray(value)) return [...errors, `${path}: must be an array`];
      if (schema.minItems !== undefined && value.length < schema.minItems) fail(`needs at least ${schema.minItems} items`);
      if (schema.maxItems !== undefined && value.length > schema.maxItems) fail(`takes at most ${schema.maxItems} items`);
      value.forEach((v, i) => errors.push(...checkAgainstSchema(schema.items, v, `${path}[${i}]`)));
      return errors;
    case 'string':
      if (typeof value !== 'string') return [...errors, `${path}: must be a string`];
      if (schema.minLength !== undefined && value.length < schema.minLength) fail(`shorter than ${schema.minLength}`);
      if (schema.maxLength !== undefined && value.length > schema.maxLength) fail(`longer than ${schema.maxLength}`);
      if (schema.pattern && !new RegExp(schema.pattern, 'u').test(value)) fail(`does not match ${schema.pattern}`);
      if (schema.format === 'date-time' && Number.isNaN(Date.parse(value))) fail('is not a date-time');
      return errors;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) return [...errors, `${path}: must be an ${schema.type}`];
      if (schema.minimum !== undefined && value < schema.minimum) fail(`must be >= ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) fail(`must be <= ${schema.maximum}`);
      return errors;
    case 'boolean':
      if (typeof value !== 'boolean') fail('must be a boolean');
      return errors;
    default:
      return [...errors, `${path}: schema has no type (not structural)`];
  }
}
