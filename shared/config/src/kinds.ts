import type { z } from "zod";

/**
 * What a schema accepts once wrappers (default, optional, nullable, pipe) are peeled off.
 * Strings from flags and env vars are converted to this kind before validation.
 */
export type InputKind = "string" | "number" | "boolean" | "array" | "object" | "other";

// Zod 4 keeps the structure of every schema in `_zod.def`; only the parts read here are typed.
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  defaultValue?: unknown;
  shape?: Record<string, z.ZodType>;
}

export function defOf(schema: z.ZodType): Def {
  return (schema as unknown as { _zod: { def: Def } })._zod.def;
}

/** Peels default/optional/nullable/readonly/catch wrappers and a pipe's output side. */
export function unwrap(schema: z.ZodType): z.ZodType {
  let current = schema;
  for (;;) {
    const def = defOf(current);
    if (def.innerType) current = def.innerType;
    else if (def.type === "pipe" && def.in) current = def.in;
    else return current;
  }
}

export function inputKind(schema: z.ZodType): InputKind {
  const base = unwrap(schema);
  const def = defOf(base);
  switch (def.type) {
    case "string":
    case "enum":
    case "literal":
    case "template_literal":
      return "string";
    case "number":
    case "int":
    case "bigint":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return "array";
    case "object":
    case "record":
      return "object";
    case "union": {
      // A union that accepts strings (like `duration`) takes the raw text.
      const kinds = (def.options ?? []).map(inputKind);
      return kinds.includes("string") ? "string" : (kinds[0] ?? "other");
    }
    default:
      return "other";
  }
}

/** The element schema of an array option, for converting each comma-separated item. */
export function elementOf(schema: z.ZodType): z.ZodType | undefined {
  return defOf(unwrap(schema)).element;
}

/** The default value of a schema, if it declares one. */
export function defaultOf(schema: z.ZodType): unknown {
  let current: z.ZodType | undefined = schema;
  while (current) {
    const def = defOf(current);
    if (def.type === "default" || def.type === "prefault") return def.defaultValue;
    current = def.innerType;
  }
  return undefined;
}

/** The object shape at the end of a path into a schema, for "did you mean" on unknown keys. */
export function shapeAt(
  schema: z.ZodType,
  path: readonly PropertyKey[],
  input?: unknown,
): string[] {
  let current = unwrap(schema);
  let value = input;
  for (const step of path) {
    current = member(current, value);
    const def = defOf(current);
    if (def.shape && typeof step === "string" && def.shape[step]) current = unwrap(def.shape[step]);
    else if (def.element) current = unwrap(def.element);
    else if (def.valueType) current = unwrap(def.valueType);
    else return [];
    value =
      value && typeof value === "object"
        ? (value as Record<PropertyKey, unknown>)[step]
        : undefined;
  }
  return Object.keys(defOf(member(current, value)).shape ?? {});
}

/**
 * The option of a union that `value` is meant for: the object whose literal field (a `type:`
 * tag) has the value's, so that a mistyped key is matched against that member's keys. Any
 * other schema, or no match, is returned as it is.
 */
function member(schema: z.ZodType, value: unknown): z.ZodType {
  const options = defOf(schema).options;
  if (!options || !value || typeof value !== "object") return schema;
  for (const option of options.map(unwrap)) {
    const shape = defOf(option).shape ?? {};
    const tagged = Object.entries(shape).some(([key, field]) => {
      const values = (defOf(unwrap(field)) as { values?: unknown[] }).values;
      return values?.includes((value as Record<string, unknown>)[key]) === true;
    });
    if (tagged) return option;
  }
  return schema;
}
