#!/usr/bin/env python3
"""How a client reads a failed call of any TicketDrop service: "refused" (the service
decided and certainly did nothing), "unknown" (it may have taken effect: retry with the
same idempotency key, or look the key up) or "error" (the call itself was wrong).

The rule is the table in proto/ticketdrop/v1/outcomes.json, shared with the services
(proto/src/outcome.rs) and the TypeScript client: a status carrying a TicketDrop
ErrorInfo reason is classified by its reason, one without by its code.

Run it to check the table's cases (needs the stubs of generate.py on PYTHONPATH):

    PYTHONPATH=clients/python/gen .stack/venv/bin/python clients/python/outcome.py
"""

import json
import pathlib
import sys

import grpc

from google.rpc import error_details_pb2, status_pb2

TABLE = json.loads(
    (pathlib.Path(__file__).resolve().parents[2] / "proto/ticketdrop/v1/outcomes.json").read_text()
)


def classify(code: str, reason: str | None) -> str:
    """The table's class of a gRPC code name ("UNAVAILABLE") and an optional reason."""
    if reason and reason in TABLE["reasons"]:
        return TABLE["reasons"][reason]
    return TABLE["codes"].get(code, "error")


def reason_of(error: grpc.RpcError) -> str | None:
    """The ErrorInfo reason a failed call carries, from its grpc-status-details-bin."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return info.reason
    return None


def of(error: grpc.RpcError) -> str:
    """The class of a failed call."""
    return classify(error.code().name, reason_of(error))


def main() -> int:
    wrong = [
        case
        for case in TABLE["cases"]
        if classify(case["code"], case["reason"] or None) != case["class"]
    ]
    for case in wrong:
        print(f"wrong: {case}", file=sys.stderr)
    print(json.dumps({"cases": len(TABLE["cases"]), "wrong": len(wrong)}))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
