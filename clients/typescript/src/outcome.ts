// How a client reads a failed call of any TicketDrop service: "refused" (the service
// decided and certainly did nothing), "unknown" (it may have taken effect: retry with the
// same idempotency key, or look the key up) or "error" (the call itself was wrong).
//
// The rule is the table in proto/ticketdrop/v1/outcomes.json, shared with the services
// (proto/src/outcome.rs) and the Python client: a status carrying a TicketDrop ErrorInfo
// reason is classified by its reason, one without by its code.
//
//   node dist/outcome.js    checks the table's cases, prints {"cases": n, "wrong": 0}

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";

export type Outcome = "refused" | "unknown" | "error";

interface Table {
  reasons: Record<string, Outcome>;
  codes: Record<string, Outcome>;
  cases: { code: string; reason: string; class: Outcome }[];
}

// dist/outcome.js and src/outcome.ts both sit three folders below the repository.
const TABLE: Table = JSON.parse(
  readFileSync(new URL("../../../proto/ticketdrop/v1/outcomes.json", import.meta.url), "utf8"),
);

// The gRPC name of a code: Code.DeadlineExceeded -> "DEADLINE_EXCEEDED".
function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

// The table's class of a gRPC code name and an optional reason.
export function classify(code: string, reason: string | undefined): Outcome {
  if (reason && reason in TABLE.reasons) return TABLE.reasons[reason];
  return TABLE.codes[code] ?? "error";
}

// The ErrorInfo reason a failed call carries.
export function reasonOf(error: ConnectError): string | undefined {
  return error.findDetails(ErrorInfoSchema)[0]?.reason;
}

// The class of a failed call (anything not a ConnectError is an error of this program).
export function outcomeOf(error: unknown): Outcome {
  if (!(error instanceof ConnectError)) return "error";
  return classify(codeName(error.code), reasonOf(error));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const wrong = TABLE.cases.filter((c) => classify(c.code, c.reason || undefined) !== c.class);
  for (const c of wrong) console.error(`wrong: ${JSON.stringify(c)}`);
  console.log(JSON.stringify({ cases: TABLE.cases.length, wrong: wrong.length }));
  process.exit(wrong.length === 0 ? 0 : 1);
}
