// A refusal as the services send it (a gRPC status with a google.rpc.ErrorInfo whose
// reason is one of common.proto's ErrorReason names, or a BadRequest naming the field),
// and what the page tells a fan about it.

import { Code, ConnectError } from "@connectrpc/connect";

import { BadRequestSchema, ErrorInfoSchema } from "./gen/google/rpc/error_details_pb";

export interface Refusal {
  code: Code;
  /** ErrorInfo.reason, e.g. "CARD_DECLINED"; "" when the status has none. */
  reason: string;
  metadata: Record<string, string>;
  message: string;
}

export function refusal(error: unknown): Refusal {
  const e = ConnectError.from(error);
  const info = e.findDetails(ErrorInfoSchema)[0];
  const bad = e.findDetails(BadRequestSchema)[0];
  const field = bad?.fieldViolations[0];
  return {
    code: e.code,
    reason: info?.reason ?? "",
    metadata: info?.metadata ?? {},
    message: field ? `${field.field}: ${field.description}` : e.rawMessage,
  };
}

/** A sentence for a fan. */
export function explain(r: Refusal): string {
  switch (r.reason) {
    case "CARD_DECLINED": {
      const why = (r.metadata["decline_code"] ?? "").replaceAll("_", " ");
      return `Your card was declined${why ? ` (${why})` : ""}. Nothing was charged, and the seats went back on sale.`;
    }
    case "SOLD_OUT":
      return "Every seat of this event is sold.";
    case "SEAT_TAKEN":
      return `Someone else got ${r.metadata["seats"] ? `seat ${r.metadata["seats"]}` : "those seats"} first. Nothing was charged.`;
    case "ADMISSION_EXPIRED":
      return "Your turn to buy ran out before the purchase reached us.";
    case "ADMISSION_USED":
      return "Your turn was used by another purchase. Join the queue again for another turn.";
    case "ADMISSION_REQUIRED":
    case "ADMISSION_INVALID":
      return "This event sells through its queue: join it to get a turn.";
    case "OUTCOME_UNKNOWN":
      return "We have not heard back yet whether your purchase went through; we keep looking.";
    case "RATE_LIMITED":
      return "Too many tries in a short time; wait a moment and try again.";
    case "UNAUTHENTICATED":
      return "Your sign-in has expired: sign in again.";
    case "PARTICIPANT_UNAVAILABLE":
    case "INTERRUPTED":
      return "The purchase could not finish and was undone: nothing was sold and nothing charged. You can try again.";
  }
  if (r.code === Code.InvalidArgument) return `Please check: ${r.message}.`;
  if (r.code === Code.Unavailable || r.code === Code.DeadlineExceeded) {
    return "The service is not answering right now; please try again in a moment.";
  }
  return r.message;
}
