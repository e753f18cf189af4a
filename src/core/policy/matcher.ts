import { compileGlob, GlobSet, hasGlobChars } from "./glob.js";
import { expandInVocabulary } from "./patterns.js";
import type { ConnectionType } from "./vocabulary.js";
import { HTTP_METHODS, isStatementKind, KUBERNETES_VERBS, STATEMENT_KINDS } from "./vocabulary.js";
import type { MatcherConfig } from "./schema.js";
import type { RequestFacts } from "./facts.js";

/**
 * A matcher compiled once at config load. Within one request item (a statement, an API call, an HTTP call) all
 * given keys must hold; the matcher fires if ANY item of the request matches, so one bad statement in a batch is
 * enough. For ssh, `commands` and `patterns` are separate item lists: both must find a match when both are given.
 */
export interface CompiledMatcher {
  /** Human-readable, e.g. `statements drop, truncate` or `methods POST on paths /admin/*`. */
  readonly summary: string;
  /** A short description of the part of the request that matched, or undefined. */
  match(facts: RequestFacts): string | undefined;
}

function words(list: readonly string[], quote = false): string {
  return list.map((w) => (quote ? JSON.stringify(w) : w)).join(", ");
}

function expandAll(patterns: readonly string[], vocabulary: readonly string[]): Set<string> {
  return new Set(patterns.flatMap((p) => expandInVocabulary(p, vocabulary)));
}

export function compileMatcher(m: MatcherConfig, type: ConnectionType): CompiledMatcher {
  switch (type) {
    case "postgres":
    case "mysql":
      return compileSql(m);
    case "ssh":
      return compileShell(m);
    case "kubernetes":
      return compileKubernetes(m);
    case "http":
      return compileHttp(m);
  }
}

// ---------------------------------------------------------------- SQL

type PartTest = (part: string) => boolean;

function partTest(pattern: string): PartTest {
  if (hasGlobChars(pattern)) {
    const re = compileGlob(pattern, { caseInsensitive: true });
    return (p) => re.test(p);
  }
  const lower = pattern.toLowerCase();
  return (p) => p.toLowerCase() === lower;
}

/**
 * A table or function name pattern. `users` matches `users` and `public.users`; `public.users` also matches a bare
 * `users`, because the session's search_path decides at run time which table that is, and a deny rule must not be
 * dodged by leaving the schema out; it does not match `other.users`. Functions alike: `pg_catalog.set_config`
 * matches `set_config(...)` too, which is that function in every session (pg_catalog is searched first unless
 * search_path names it later).
 */
function compileQualifiedName(pattern: string): (name: string) => boolean {
  const parts = pattern.split(".").map(partTest);
  return (name) => {
    const tparts = name.split(".");
    const n = Math.min(parts.length, tparts.length);
    for (let i = 1; i <= n; i++) {
      const test = parts[parts.length - i] as PartTest;
      if (!test(tparts[tparts.length - i] as string)) return false;
    }
    return true;
  };
}

function compileSql(m: MatcherConfig): CompiledMatcher {
  const kinds = m.statements ? expandAll(m.statements, STATEMENT_KINDS) : undefined;
  const tables = m.tables?.map(compileQualifiedName);
  const functions = m.functions?.map(compileQualifiedName);
  const withoutWhere = m.without_where === true;

  const summaryParts: string[] = [];
  if (m.statements) summaryParts.push(`statements ${words(m.statements)}`);
  if (m.tables) summaryParts.push(`${m.statements ? "on " : ""}tables ${words(m.tables)}`);
  if (m.functions) summaryParts.push(`${m.statements || m.tables ? "calling " : ""}functions ${words(m.functions)}`);
  if (withoutWhere) summaryParts.push("without where");

  return {
    summary: summaryParts.join(" "),
    match(facts) {
      for (const s of facts.statements) {
        const lower = s.kind.toLowerCase();
        const kind = isStatementKind(lower) ? lower : "unknown";
        if (kinds && !kinds.has(kind)) continue;
        // WHERE only means something for UPDATE/DELETE; unknown (undefined) counts as missing
        if (withoutWhere && (s.hasWhere === true || (kind !== "update" && kind !== "delete"))) continue;
        let table: string | undefined;
        if (tables) {
          table = s.tables.find((t) => tables.some((test) => test(t)));
          if (table === undefined) continue;
        }
        let call: string | undefined;
        if (functions) {
          call = s.functions?.find((f) => functions.some((test) => test(f)));
          if (call === undefined) continue;
        }
        const on = table !== undefined ? ` on ${table}` : s.tables.length > 0 ? ` on ${s.tables.join(", ")}` : "";
        const calling = call !== undefined ? ` calling ${call}` : "";
        return `statement ${kind}${on}${calling}${withoutWhere ? " without WHERE" : ""}`;
      }
      return undefined;
    },
  };
}

// ---------------------------------------------------------------- shell

function compileShell(m: MatcherConfig): CompiledMatcher {
  const commands = m.commands ? new GlobSet(m.commands) : undefined;
  const patterns = m.patterns ? new GlobSet(m.patterns) : undefined;
  const summaryParts: string[] = [];
  if (m.commands) summaryParts.push(`commands ${words(m.commands)}`);
  if (m.patterns) summaryParts.push(`patterns ${words(m.patterns, true)}`);

  return {
    summary: summaryParts.join(" and "),
    match(facts) {
      let found: string[] = [];
      if (commands) {
        const hit = facts.commands.find((c) => {
          const slash = c.name.lastIndexOf("/");
          return commands.matches(c.name) || (slash >= 0 && commands.matches(c.name.slice(slash + 1)));
        });
        if (!hit) return undefined;
        found.push(`command ${hit.name}`);
      }
      if (patterns) {
        // argv text is a fallback so a pattern rule still fires if an analyzer left `pipelines` empty
        let hit = facts.pipelines.find((p) => patterns.matches(p));
        hit ??= facts.commands.map((c) => c.argv.join(" ")).find((p) => patterns.matches(p));
        if (hit === undefined) return undefined;
        found = [...found, `command line ${JSON.stringify(hit)}`];
      }
      return found.join(" and ");
    },
  };
}

// ---------------------------------------------------------------- kubernetes

function compileKubernetes(m: MatcherConfig): CompiledMatcher {
  const calls = m.verbs || m.resources || m.namespaces ? compileApiCalls(m) : undefined;
  const shell = m.commands || m.patterns ? compileShell(m) : undefined;
  if (!shell) return calls as CompiledMatcher;
  if (!calls) return shell;
  return {
    summary: `${shell.summary} ${calls.summary.startsWith("verbs") ? "on" : "for"} ${calls.summary}`,
    match(facts) {
      // a command rule that names a place: the exec call itself, or the exec a typed line runs inside
      const where = calls.match({ ...facts, apiCalls: [...facts.apiCalls, ...(facts.within ?? [])] });
      if (where === undefined) return undefined;
      const what = shell.match(facts);
      return what === undefined ? undefined : `${what} in ${where}`;
    },
  };
}

/** verbs, resources, namespaces: all given keys must hold for one API call of the request. */
function compileApiCalls(m: MatcherConfig): CompiledMatcher {
  const verbs = m.verbs ? expandAll(m.verbs, KUBERNETES_VERBS) : undefined;
  const resources = m.resources ? new GlobSet(m.resources, { caseInsensitive: true }) : undefined;
  const namespaces = m.namespaces ? new GlobSet(m.namespaces) : undefined;
  const summaryParts: string[] = [];
  if (m.verbs) summaryParts.push(`verbs ${words(m.verbs)}`);
  if (m.resources) summaryParts.push(`${summaryParts.length ? "on " : ""}resources ${words(m.resources)}`);
  if (m.namespaces) summaryParts.push(`${summaryParts.length ? "in " : ""}namespaces ${words(m.namespaces)}`);

  return {
    summary: summaryParts.join(" "),
    match(facts) {
      for (const call of facts.apiCalls) {
        const verb = call.verb.toLowerCase();
        if (verbs && !verbs.has(verb)) continue;
        const full = call.subresource ? `${call.resource}/${call.subresource}` : call.resource;
        // `pods` covers pods/exec too; `pods/exec` names just that subresource
        if (resources && !resources.matches(call.resource) && !resources.matches(full)) continue;
        // cluster-scoped calls have no namespace and never match a namespaces rule
        if (namespaces && (call.namespace === undefined || !namespaces.matches(call.namespace))) continue;
        const ns = call.namespace ? ` in ${call.namespace}` : "";
        const what = call.resource === "" ? (call.path ?? "") : `${full}${call.name ? ` ${call.name}` : ""}`;
        return `${verb} ${what}${ns}`;
      }
      return undefined;
    },
  };
}

// ---------------------------------------------------------------- http

function compileHttp(m: MatcherConfig): CompiledMatcher {
  const methods = m.methods ? expandAll(m.methods, HTTP_METHODS) : undefined;
  const paths = m.paths ? new GlobSet(m.paths) : undefined;
  const summaryParts: string[] = [];
  if (m.methods) summaryParts.push(`methods ${words(m.methods.map((x) => x.toUpperCase()))}`);
  if (m.paths) summaryParts.push(`${summaryParts.length ? "on " : ""}paths ${words(m.paths)}`);

  return {
    summary: summaryParts.join(" "),
    match(facts) {
      for (const call of facts.httpCalls) {
        const method = call.method.toUpperCase();
        if (methods && !methods.has(method)) continue;
        const q = call.path.indexOf("?");
        const path = q >= 0 ? call.path.slice(0, q) : call.path;
        if (paths && !paths.matches(path)) continue;
        return `${method} ${path}`;
      }
      return undefined;
    },
  };
}
