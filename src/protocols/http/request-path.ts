/**
 * The path a rule judges must be the path the target serves. Targets normalise paths (`/a/../admin` is `/admin`,
 * `%61dmin` is `admin`) and some decode `%2F` into a slash, so a request whose path could be read two ways is
 * refused rather than judged on the reading a deny rule does not match. What is left is one canonical spelling,
 * and that exact spelling is what the target is sent.
 */
export type NormalizedPath = { path: string; query: string } | { error: string };

const UNRESERVED = /[A-Za-z0-9\-._~]/;

export function normalizeRequestPath(target: string): NormalizedPath {
  const q = target.indexOf("?");
  const rawPath = q >= 0 ? target.slice(0, q) : target;
  const query = q >= 0 ? target.slice(q) : "";
  if (!rawPath.startsWith("/")) return { error: "the path must start with /" };
  if (rawPath.includes("\\")) return { error: "backslashes in the path are refused (targets read them differently)" };
  let path = "";
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i] as string;
    if (c !== "%") {
      path += c;
      continue;
    }
    const hex = rawPath.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return { error: "malformed percent-encoding in the path" };
    const ch = String.fromCharCode(parseInt(hex, 16));
    if (ch === "/" || ch === "\\" || ch === "\0")
      return { error: `an encoded ${JSON.stringify(ch)} in the path is refused (targets read it differently)` };
    // unreserved characters mean the same encoded or not: decode them, so `%61dmin` is judged as `admin`
    path += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  for (const segment of path.split("/").slice(1, -1)) {
    if (segment === "") return { error: "empty path segments (//) are refused (targets read them differently)" };
  }
  for (const segment of path.split("/")) {
    if (segment === "." || segment === "..")
      return { error: "dot segments (/./, /../) in the path are refused (targets resolve them)" };
  }
  return { path, query };
}
