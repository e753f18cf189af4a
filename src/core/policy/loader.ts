import { readFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, resolve } from "node:path";
import YAML from "yaml";
import { ConfigError, PathError, zodToConfigError } from "./errors.js";
import { resolveReferences, type ReferenceMap } from "./references.js";
import { configSchema, type GatehouseConfig } from "./schema.js";

export interface ParseOptions {
  /** Name used in error messages (normally the path as the user typed it). */
  source?: string;
  /** Directory for relative `data`, file sinks and `${file:...}` references. Defaults to the current directory. */
  baseDir?: string;
  /** Environment for `${env:...}`. Defaults to process.env. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** What the loader knows about a config besides its values: where it came from and which strings were references. */
export interface ConfigMeta {
  source: string;
  baseDir: string;
  references: ReferenceMap;
}

const metas = new WeakMap<object, ConfigMeta>();

/** Source and reference spellings of a config returned by parseConfig/loadConfig (used to redact output). */
export function configMeta(config: GatehouseConfig): ConfigMeta | undefined {
  return metas.get(config);
}

/** Parses YAML text without touching the file system except for `${file:...}` references. Throws ConfigError. */
export function parseConfig(text: string, options: ParseOptions = {}): GatehouseConfig {
  const source = options.source ?? "gatehouse.yaml";
  const baseDir = resolve(options.baseDir ?? ".");
  const raw = parseYaml(text, source);
  if (raw === null || raw === undefined) throw ConfigError.at(source, "", "the file is empty (expected a mapping)");
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw ConfigError.at(source, "", "expected a mapping at the top level");
  }

  let resolved: { value: unknown; references: ReferenceMap };
  try {
    resolved = resolveReferences(raw, { baseDir, env: options.env ?? process.env });
  } catch (err) {
    if (err instanceof PathError) throw ConfigError.at(source, err.path, err.message);
    throw err;
  }

  const result = configSchema.safeParse(resolved.value, { reportInput: true });
  if (!result.success) throw zodToConfigError(source, result.error);

  const config = result.data;
  config.data = resolve(baseDir, config.data);
  for (const sink of config.audit.sinks) {
    if (sink.type === "file" && !isAbsolute(sink.path)) sink.path = resolve(baseDir, sink.path);
  }
  metas.set(config, { source, baseDir, references: resolved.references });
  return config;
}

/** Parses YAML into plain data; syntax errors name line and column. Shared with the policy-test cases loader. */
export function parseYaml(text: string, source: string): unknown {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    const where = pos ? `line ${pos.line}, column ${pos.col}` : "";
    const what = (first.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "");
    throw ConfigError.at(source, where, `YAML syntax error: ${what}`);
  }
  try {
    // a small alias budget keeps "billion laughs" documents from exhausting memory
    return doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw ConfigError.at(source, "", `YAML error: ${(err as Error).message}`);
  }
}

function displayName(path: string): string {
  return isAbsolute(path) ? path : path || basename(path);
}

export async function loadConfig(
  path: string,
  options: Omit<ParseOptions, "source" | "baseDir"> = {},
): Promise<GatehouseConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw ConfigError.at(
      displayName(path),
      "",
      `cannot read config: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  return parseConfig(text, { ...options, source: displayName(path), baseDir: dirname(resolve(path)) });
}
