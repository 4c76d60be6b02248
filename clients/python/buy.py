#!/usr/bin/env python3
"""Buy a ticket through the TicketDrop coordinator with a client generated from proto/.

Generate the stubs first (grpcio-tools, installed by `make stack-up` in .stack/venv):

    .stack/venv/bin/python -m grpc_tools.protoc -I proto \
        --python_out=clients/python/gen --grpc_python_out=clients/python/gen \
        proto/ticketdrop/v1/*.proto

then:

    PYTHONPATH=clients/python/gen .stack/venv/bin/python clients/python/buy.py \
        --event my-event --seats A-1-1 --protocol saga --key my-first-purchase

It prints the purchase as one JSON object, or the error (code, message, txid) and exits 1.
"""

import argparse
import json
import sys

import grpc

from ticketdrop.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc

PROTOCOLS = {
    "2pc": common_pb2.PROTOCOL_TWO_PHASE_COMMIT,
    "saga": common_pb2.PROTOCOL_SAGA,
    "lease": common_pb2.PROTOCOL_LEASE,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50050", help="coordinator host:port")
    parser.add_argument("--user", default="python-fan")
    parser.add_argument("--event", required=True)
    parser.add_argument("--seats", default="", help="comma-separated seat ids, e.g. A-1-1,A-1-2")
    parser.add_argument("--quantity", type=int, default=0, help="best available seats instead")
    parser.add_argument("--card", default="tok_visa")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="saga")
    parser.add_argument("--key", required=True, help="idempotency key")
    args = parser.parse_args()

    request = coordinator_pb2.PurchaseRequest(
        user_id=args.user,
        event_id=args.event,
        seat_ids=[s for s in args.seats.split(",") if s],
        quantity=args.quantity,
        card_token=args.card,
        idempotency_key=args.key,
        protocol=PROTOCOLS[args.protocol],
    )
    with grpc.insecure_channel(args.target) as channel:
        stub = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
        try:
            response = stub.Purchase(request, timeout=30)
        except grpc.RpcError as error:
            print(json.dumps({"code": error.code().name, "message": error.details()}))
            return 1
    print(
        json.dumps(
            {
                "txid": response.txid,
                "order_id": response.order_id,
                "seats": [s.seat_id for s in response.seats],
                "tickets": [t.ticket_id for t in response.tickets],
                "amount_cents": response.amount_cents,
                "currency": response.currency,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
