import { asFields, asList, asString, unwrap, type Fields } from "./node.js";

/**
 * Settings that change how the server splits later text into tokens. The gateway's parser always assumes
 * standard_conforming_strings=on and UTF-8, so after `SET standard_conforming_strings = off` the text
 * `SELECT '\''; DROP TABLE t; --'` is one string to the gateway but a DROP to the server. A statement that would
 * make the two disagree is reported as unanalyzable (the policy's on_unparseable decides; default deny).
 * set_config() and server-side defaults cannot be seen in SQL text: the adapter must also watch ParameterStatus.
 */

// PostgreSQL accepts any unique prefix of true/yes/on (and 1) as a boolean true
const TRUE_WORDS = new Set(["1", "t", "tr", "tru", "true", "y", "ye", "yes", "on"]);
const UTF8_NAMES = new Set(["utf8", "unicode"]);

function settingValue(fields: Fields): string | undefined {
  const first = unwrap(asList(fields.args)[0]);
  if (!first || first[0] !== "A_Const") return undefined;
  const c = first[1];
  const s = asString(asFields(c.sval)?.sval);
  if (s !== undefined) return s;
  const b = asFields(c.boolval);
  if (b) return b.boolval === true ? "true" : "false";
  const i = asFields(c.ival);
  if (i) return String(typeof i.ival === "number" ? i.ival : 0);
  return undefined;
}

/** Why this statement makes later text unanalyzable, or undefined. */
export function parserStateChange(type: string, fields: Fields): string | undefined {
  if (type !== "VariableSetStmt" || fields.kind !== "VAR_SET_VALUE") return undefined;
  const name = asString(fields.name);
  const value = settingValue(fields)?.toLowerCase();
  if (name === "standard_conforming_strings" && (value === undefined || !TRUE_WORDS.has(value))) {
    return "standard_conforming_strings=off would make the server read string literals differently from the gateway";
  }
  if (name === "client_encoding" && (value === undefined || !UTF8_NAMES.has(value.replace(/[^a-z0-9]/g, "")))) {
    return `client_encoding ${JSON.stringify(value ?? "?")} is not UTF8; the gateway analyzes UTF-8 text only`;
  }
  return undefined;
}
