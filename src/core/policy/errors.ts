import type { z } from "zod";

export type ConfigPath = readonly PropertyKey[];

/** `connections[2].guardrails[0].deny` — the form every config message uses ("" for the top level). */
export function formatPath(path: ConfigPath): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else {
      const name = String(key);
      // keys that are not plain identifiers (header names with dashes are fine) get quoted
      const plain = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(name);
      out += plain ? (out === "" ? name : `.${name}`) : `[${JSON.stringify(name)}]`;
    }
  }
  return out;
}

/**
 * A configuration problem, always one line: `FILE: PATH: what is wrong`. One line because it is what `gatehouse`
 * prints on failure and what operators grep for in CI logs.
 */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: readonly { path: string; message: string }[],
  ) {
    super(ConfigError.render(source, problems));
    this.name = "ConfigError";
  }

  static at(source: string, path: ConfigPath | string, message: string): ConfigError {
    return new ConfigError(source, [{ path: typeof path === "string" ? path : formatPath(path), message }]);
  }

  private static render(source: string, problems: readonly { path: string; message: string }[]): string {
    const parts = problems.map((p) => (p.path === "" ? p.message : `${p.path}: ${p.message}`));
    return `${source}: ${parts.join("; ")}`.replace(/\s*[\r\n]+\s*/g, " ");
  }
}

/** Raised inside resolution/validation helpers that know the path but not the file name. */
export class PathError extends Error {
  constructor(
    readonly path: ConfigPath,
    message: string,
  ) {
    super(message);
    this.name = "PathError";
  }
}

const MAX_REPORTED = 3;

function quote(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

function typeName(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${quote(value)}`;
}

const EXPECTED_NAMES: Record<string, string> = { object: "a mapping", array: "a list", record: "a mapping" };

/** Turns zod's issues into short, operator-facing sentences. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "unrecognized_keys":
      return issue.keys.length === 1
        ? `unknown key ${JSON.stringify(issue.keys[0])}`
        : `unknown keys ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    case "invalid_type": {
      if (issue.input === undefined) return "required";
      const expected = EXPECTED_NAMES[issue.expected] ?? `a ${issue.expected}`;
      return `expected ${expected}, got ${typeName(issue.input)}`;
    }
    case "invalid_value":
      return issue.values.length === 1
        ? `must be ${quote(issue.values[0])}, got ${quote(issue.input)}`
        : `invalid value ${quote(issue.input)} (expected one of ${issue.values.map((v) => String(v)).join(", ")})`;
    case "invalid_union":
      if ("discriminator" in issue && issue.discriminator) {
        const options = (issue as { options?: unknown[] }).options ?? [];
        // zod reports the whole object as input; the offending value is its discriminator field
        const input = issue.input as Record<string, unknown> | undefined;
        const value = input && typeof input === "object" ? input[issue.discriminator] : undefined;
        return value === undefined
          ? `required (one of ${options.join(", ")})`
          : `invalid value ${quote(value)} (expected one of ${options.join(", ")})`;
      }
      return issue.message;
    case "too_small": {
      const min = Number(issue.minimum);
      if (issue.origin === "array") return min <= 1 ? "must not be empty" : `must have at least ${min} entries`;
      if (issue.origin === "string") return min <= 1 ? "must not be empty" : `must be at least ${min} characters`;
      return `must be at least ${min}${issue.inclusive === false ? " (exclusive)" : ""}`;
    }
    case "too_big": {
      const max = Number(issue.maximum);
      if (issue.origin === "array") return `must have at most ${max} entries`;
      if (issue.origin === "string") return `must be at most ${max} characters`;
      return `must be at most ${max}`;
    }
    case "invalid_format":
      return issue.message.startsWith("Invalid") ? `invalid ${issue.format} ${quote(issue.input)}` : issue.message;
    default:
      return issue.message;
  }
}

export function zodToConfigError(source: string, error: z.ZodError): ConfigError {
  const problems = error.issues.slice(0, MAX_REPORTED).map((issue) => ({
    path: formatPath(issue.path),
    message: describeIssue(issue),
  }));
  return new ConfigError(source, problems);
}
