#!/usr/bin/env python3
"""A fan's whole journey through TicketDrop, from stubs generated from proto/: join the
event's waiting room, watch until admitted, buy one seat with the admission token, and
verify the ticket with orders-dynamo.

Generate the stubs first (grpcio-tools, installed by `make stack-up` in .stack/venv):

    .stack/venv/bin/python clients/python/generate.py

then:

    PYTHONPATH=clients/python/gen .stack/venv/bin/python clients/python/journey.py \\
        --event my-event --user py-fan --key py-fan-1 --protocol saga

It logs in first: with --token (or TICKETDROP_TOKEN) when given, or else by running the
local stack's login, `ticketdrop login --user U` (the command in TICKETDROP_LOGIN,
target/release/ticketdrop login by default). Every call carries the bearer token.

It prints the journey as one JSON object, or the refusal (code, message) and exits 1.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import grpc

import outcome
from ticketdrop.v1 import (
    common_pb2,
    coordinator_pb2,
    coordinator_pb2_grpc,
    orders_pb2,
    orders_pb2_grpc,
    waiting_room_pb2,
    waiting_room_pb2_grpc,
)

PROTOCOLS = {
    "2pc": common_pb2.PROTOCOL_TWO_PHASE_COMMIT,
    "saga": common_pb2.PROTOCOL_SAGA,
    "lease": common_pb2.PROTOCOL_LEASE,
}


def login(user: str, token: str | None) -> str:
    """The fan's token: given, or from the local stack's login."""
    if token:
        return token
    command = shlex.split(os.environ.get("TICKETDROP_LOGIN", "target/release/ticketdrop login"))
    return subprocess.run(
        [*command, "--user", user], check=True, capture_output=True, text=True
    ).stdout.strip()


def replicas(targets: str) -> grpc.Channel:
    """One channel to a service's replicas: "host:port", or several comma-separated (the
    coordinators of one log). gRPC's own round_robin balancer spreads the calls over them
    and skips a replica it cannot reach."""
    hosts = [t.strip().removeprefix("http://") for t in targets.split(",") if t.strip()]
    if len(hosts) == 1:
        return grpc.insecure_channel(hosts[0])
    # The authority of a list target would hold the whole list, which is no valid
    # :authority header: name the service instead.
    return grpc.insecure_channel(
        "ipv4:" + ",".join(hosts),
        options=[
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.default_authority", "coordinator"),
        ],
    )


# Calls of one purchase while its outcome is unknown (a coordinator not reachable, or cut
# off mid-call), with the same idempotency key every time: a repeat is the same purchase.
PURCHASE_ATTEMPTS = 4


def purchase(coordinator, request, auth):
    """Purchase, sent again with the same key while its outcome is unknown (outcome.py:
    the classification the services use), with a doubling wait."""
    wait = 0.2
    for attempt in range(1, PURCHASE_ATTEMPTS + 1):
        try:
            return coordinator.Purchase(request, timeout=30, metadata=auth)
        except grpc.RpcError as error:
            if outcome.of(error) != "unknown" or attempt == PURCHASE_ATTEMPTS:
                raise
            print(f"purchase attempt {attempt}: outcome unknown ({error.code().name}), "
                  f"again in {wait:.1f} s", file=sys.stderr)
            time.sleep(wait)
            wait *= 2
    raise AssertionError("unreachable")


def journey(args: argparse.Namespace) -> dict:
    auth = (("authorization", f"Bearer {login(args.user, args.token)}"),)
    with grpc.insecure_channel(args.room) as room_channel, replicas(
        args.coordinator
    ) as coordinator_channel, grpc.insecure_channel(args.orders) as orders_channel:
        room = waiting_room_pb2_grpc.WaitingRoomServiceStub(room_channel)
        coordinator = coordinator_pb2_grpc.CoordinatorServiceStub(coordinator_channel)
        orders = orders_pb2_grpc.OrdersServiceStub(orders_channel)

        # Join: a place in line (a refresh would keep it).
        joined = room.Join(
            waiting_room_pb2.JoinRequest(event_id=args.event, user_id=args.user), metadata=auth
        )
        # Watch: positions until the turn comes, then the admission (the stream ends there).
        positions, token = 0, None
        for update in room.Watch(
            waiting_room_pb2.WatchRequest(event_id=args.event, user_id=args.user),
            timeout=60,
            metadata=auth,
        ):
            kind = update.WhichOneof("update")
            if kind == "waiting":
                positions += 1
            elif kind == "admitted":
                token = update.admitted.token
                break
            else:
                return {"outcome": kind}
        if token is None:
            raise RuntimeError("the watch ended without an admission")

        # Buy one seat (best available) with the admission token.
        bought = purchase(
            coordinator,
            coordinator_pb2.PurchaseRequest(
                user_id=args.user,
                event_id=args.event,
                quantity=1,
                card_token=args.card,
                idempotency_key=args.key,
                protocol=PROTOCOLS[args.protocol],
                admission_token=token,
            ),
            auth,
        )
        # The ticket is real: orders-dynamo verifies its signed token.
        ticket = bought.tickets[0]
        verified = orders.VerifyTicket(
            orders_pb2.VerifyTicketRequest(token=ticket.token), timeout=10, metadata=auth
        )
        return {
            "outcome": "bought",
            "join_number": joined.place.join_number,
            "positions_seen": positions,
            "txid": bought.txid,
            "order_id": bought.order_id,
            "seats": [s.seat_id for s in bought.seats],
            "amount_cents": bought.amount_cents,
            "currency": bought.currency,
            "ticket_id": ticket.ticket_id,
            "ticket_valid": verified.valid,
            "ticket_seat": verified.ticket.seat_id,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--coordinator", default="127.0.0.1:50050", help="host:port, or several comma-separated"
    )
    parser.add_argument("--room", default="127.0.0.1:50054", help="waiting room host:port")
    parser.add_argument("--orders", default="127.0.0.1:50052", help="orders-dynamo host:port")
    parser.add_argument("--event", required=True)
    parser.add_argument("--user", default="py-fan")
    parser.add_argument("--key", required=True, help="idempotency key")
    parser.add_argument("--card", default="tok_visa")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="saga")
    parser.add_argument("--token", default=os.environ.get("TICKETDROP_TOKEN"), help="bearer token")
    args = parser.parse_args()
    try:
        result = journey(args)
    except grpc.RpcError as error:
        print(json.dumps({
            "code": error.code().name,
            "message": error.details(),
            "reason": outcome.reason_of(error),
            "outcome": outcome.of(error),
        }))
        return 1
    print(json.dumps(result))
    return 0 if result["outcome"] == "bought" else 1


if __name__ == "__main__":
    sys.exit(main())
