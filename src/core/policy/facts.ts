/**
 * What an analyzer found in one request, in protocol-neutral terms. Policy decisions look only at these facts,
 * never at raw request text, so every protocol gets the same rule semantics.
 */

export interface StatementFact {
  /** A statement kind from vocabulary.ts (anything else is treated as `unknown`). */
  kind: string;
  /** Tables the statement touches, as written (`users`, `public.users`), unquoted. */
  tables: string[];
  /** Whether an UPDATE/DELETE has a WHERE clause. Left undefined it counts as "no WHERE" (fail closed). */
  hasWhere?: boolean;
  /**
   * Functions the statement calls, as written (`pg_read_file`, `pg_catalog.set_config`), unquoted; absent when it
   * calls none. Only analyzers that read calls (PostgreSQL) fill it in.
   */
  functions?: string[];
}

export interface CommandFact {
  /** The command as invoked (`rm`, `/sbin/reboot`); rules match it and its basename. */
  name: string;
  argv: string[];
}

/**
 * One Kubernetes API request, in the API server's own terms. `verb` is the RBAC verb (get, list, watch, create,
 * update, patch, delete, deletecollection), except for the connect-style subresources, which get their own verb so a
 * rule can name them plainly: exec, attach, portforward, log (pods/log) and proxy.
 */
export interface ApiCallFact {
  verb: string;
  /** The API group (`""` for the core group, `apps`...) and version (`v1`), when the request names them. */
  group?: string;
  version?: string;
  /** The resource (`pods`, `secrets`); `""` for a request outside the resource API (then `path` says which). */
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** A non-resource request's path (`/version`, `/apis`, `/openapi/v3`). */
  path?: string;
}

export interface HttpCallFact {
  method: string;
  /** The request path (a query string, if present, is ignored by rules). */
  path: string;
}

/**
 * Code the analysis cannot see into, though the request runs it: an interpreter given code inline (`python3 -c`,
 * `perl -e`, a pipe into `sh`), SQL built at run time and handed to `EXECUTE`. What it does is unknown, so a deny
 * rule could not stop it; the connection's `on_opaque` decides (by default refused where there are guardrails).
 */
export interface OpaqueFact {
  /** What kind of hidden code: `inline-code`, `dynamic-sql`... */
  kind: string;
  /** Where it is, for the refusal message and evidence: `python3 -c`, `EXECUTE of a string built at run time`. */
  detail: string;
}

export interface RequestFacts {
  statements: StatementFact[];
  commands: CommandFact[];
  /** Normalized text of each simple command and of each whole pipeline, for `patterns` rules. */
  pipelines: string[];
  apiCalls: ApiCallFact[];
  httpCalls: HttpCallFact[];
  /**
   * The API call an interactive stream runs inside (a `kubectl exec` session's): each typed line carries its exec
   * call here, so a rule naming both a place (namespaces, resources) and a command applies to it, while rules about
   * API calls alone (verbs: [exec]) judge the exec once and not every line typed in it.
   */
  within?: ApiCallFact[];
  /** Code the request runs that the analysis cannot see into; `on_opaque` decides. Absent when there is none. */
  opaque?: OpaqueFact[];
  /** Set when the analyzer could not understand the request; `on_unparseable` decides what happens. */
  unparseable?: { reason: string };
}

export function emptyFacts(): RequestFacts {
  return { statements: [], commands: [], pipelines: [], apiCalls: [], httpCalls: [] };
}

/** Fills in the lists a caller left out (tests, `policy test` cases). */
export function factsFrom(partial: Partial<RequestFacts>): RequestFacts {
  const facts: RequestFacts = {
    statements: partial.statements ?? [],
    commands: partial.commands ?? [],
    pipelines: partial.pipelines ?? [],
    apiCalls: partial.apiCalls ?? [],
    httpCalls: partial.httpCalls ?? [],
  };
  if (partial.within) facts.within = partial.within;
  if (partial.opaque) facts.opaque = partial.opaque;
  if (partial.unparseable) facts.unparseable = partial.unparseable;
  return facts;
}
