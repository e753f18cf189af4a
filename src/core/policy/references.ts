import { readFileSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { formatPath, PathError, type ConfigPath } from "./errors.js";

/**
 * `${env:NAME}` and `${file:PATH}` in any string value. Secrets stay out of the YAML file; the original spelling is
 * remembered per path so that printing the config shows the reference, never the secret. `$${` is a literal `${`.
 */

export interface ReferenceContext {
  /** Directory that relative `${file:...}` paths are resolved against (the config file's directory). */
  baseDir: string;
  env: Readonly<Record<string, string | undefined>>;
}

/** Formatted path (`connections[0].target.password`) -> the string as written, for strings that used a reference. */
export type ReferenceMap = ReadonlyMap<string, string>;

const TOKEN = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_FILE_BYTES = 1024 * 1024;

export function resolveReferences(root: unknown, ctx: ReferenceContext): { value: unknown; references: ReferenceMap } {
  const references = new Map<string, string>();
  const walk = (value: unknown, path: PropertyKey[]): unknown => {
    if (typeof value === "string") {
      if (!value.includes("${")) return value;
      const resolved = resolveString(value, path, ctx);
      if (resolved.usedReference) references.set(formatPath(path), value);
      return resolved.text;
    }
    if (Array.isArray(value)) return value.map((item, i) => walk(item, [...path, i]));
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v, [...path, k]);
      return out;
    }
    return value;
  };
  return { value: walk(root, []), references };
}

function resolveString(
  text: string,
  path: ConfigPath,
  ctx: ReferenceContext,
): { text: string; usedReference: boolean } {
  let usedReference = false;
  const out = text.replace(TOKEN, (whole, body: string | undefined) => {
    if (whole === "$${") return "${";
    if (body === undefined) {
      throw new PathError(
        path,
        `unterminated reference in ${JSON.stringify(text)} (expected \${env:NAME} or \${file:PATH})`,
      );
    }
    usedReference = true;
    if (body.startsWith("env:")) return readEnv(body.slice(4), path, ctx);
    if (body.startsWith("file:")) return readRefFile(body.slice(5), path, ctx);
    throw new PathError(
      path,
      `unknown reference ${JSON.stringify(whole)} (expected \${env:NAME} or \${file:PATH}; write $\${ for a literal \${)`,
    );
  });
  return { text: out, usedReference };
}

function readEnv(name: string, path: ConfigPath, ctx: ReferenceContext): string {
  if (!ENV_NAME.test(name)) throw new PathError(path, `invalid environment variable name ${JSON.stringify(name)}`);
  const value = ctx.env[name];
  if (value === undefined) throw new PathError(path, `environment variable ${name} is not set (\${env:${name}})`);
  return value;
}

function readRefFile(file: string, path: ConfigPath, ctx: ReferenceContext): string {
  if (file === "") throw new PathError(path, "empty file name in ${file:}");
  const full = isAbsolute(file) ? file : resolve(ctx.baseDir, file);
  try {
    if (statSync(full).size > MAX_FILE_BYTES) {
      throw new PathError(path, `\${file:${file}} is larger than 1 MiB`);
    }
    return readFileSync(full, "utf8").replace(/(\r?\n)+$/, "");
  } catch (err) {
    if (err instanceof PathError) throw err;
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new PathError(path, `cannot read \${file:${file}} (${full}): ${reason}`);
  }
}
