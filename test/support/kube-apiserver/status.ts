/** Errors as the real API server sends them: a `Status` object, which kubectl prints as "Error from server (Reason): message". */
import type { ServerResponse } from "node:http";

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason: string; message: string; field?: string }[];
}

export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata: Record<string, never>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code?: number;
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): Status {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, details, code };
}

/** `pods "x" not found`, with the group when there is one (`deployments.apps "x" not found`), as the server words it */
export function notFound(resource: string, group: string, name: string): Status {
  const qualified = group ? `${resource}.${group}` : resource;
  return failure(404, "NotFound", `${qualified} "${name}" not found`, {
    name,
    group: group || undefined,
    kind: resource,
  });
}

export function sendJson(res: ServerResponse, code: number, body: unknown, contentType = "application/json"): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

export function sendStatus(res: ServerResponse, s: Status): void {
  sendJson(res, s.code ?? 500, s);
}
