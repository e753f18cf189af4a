// Module resolve hook for bench/_use-dist.js: src/**/*.ts -> dist/**/*.js when that file exists.
import { existsSync } from "node:fs";
import { fileURLToPath, URL } from "node:url";

const src = new URL("../src/", import.meta.url).href;
const dist = new URL("../dist/", import.meta.url).href;

export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  const url = resolved.url;
  if (!url.startsWith(src) || !url.endsWith(".ts") || url.endsWith(".test.ts")) return resolved;
  const built = `${dist}${url.slice(src.length, -".ts".length)}.js`;
  return existsSync(fileURLToPath(built)) ? { ...resolved, url: built, format: "module" } : resolved;
}
