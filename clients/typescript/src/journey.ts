// A fan's whole journey through TicketDrop, from a client generated from proto/
// (protoc-gen-es) and called over gRPC (Connect's Node.js transport): join the event's
// waiting room, watch until admitted, buy one seat with the admission token, and verify
// the ticket with orders-dynamo.
//
//   npm run build
//   node dist/journey.js --event my-event --user ts-fan --key ts-fan-1
//
// It logs in first: with --token (or TICKETDROP_TOKEN) when given, or else by running the
// local stack's login, `ticketdrop login --user U` (the command in TICKETDROP_LOGIN; by
// default the repo's release build, run from this folder). Every call carries the token.
//
// Prints the journey as one JSON object; on a refusal, the gRPC code, message and the
// ErrorInfo reason, and exits 1.

import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";

import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { outcomeOf, reasonOf } from "./outcome.js";
import { Protocol } from "./gen/ticketdrop/v1/common_pb.js";
import { CoordinatorService } from "./gen/ticketdrop/v1/coordinator_pb.js";
import { OrdersService } from "./gen/ticketdrop/v1/orders_pb.js";
import { WaitingRoomService } from "./gen/ticketdrop/v1/waiting_room_pb.js";

const PROTOCOLS: Record<string, Protocol> = {
  "2pc": Protocol.TWO_PHASE_COMMIT,
  saga: Protocol.SAGA,
  lease: Protocol.LEASE,
};

// The fan's token: given, or from the local stack's login.
function login(user: string, token: string | undefined): string {
  if (token) return token;
  const [command, ...args] = (
    process.env.TICKETDROP_LOGIN ??
    "../../target/release/ticketdrop --auth-dir ../../.stack/auth login"
  ).split(" ");
  return execFileSync(command, [...args, "--user", user], { encoding: "utf8" }).trim();
}

function transport(target: string, token: string): Transport {
  const bearer: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return await next(request);
  };
  return createGrpcTransport({ baseUrl: `http://${target}`, interceptors: [bearer] });
}

// Replicas of one service ("host:port", or several comma-separated: the coordinators of
// one log). Calls go round them; a call whose outcome is unknown (outcome.ts: one
// unreachable, or cut off mid-call) moves on to the next, at most once round. Sending a
// purchase again is safe: its idempotency key makes the repeat the same purchase.
function replicas(targets: string, token: string): Transport {
  const all = targets
    .split(",")
    .map((target) => target.trim().replace(/^https?:\/\//, ""))
    .filter((target) => target.length > 0)
    .map((target) => transport(target, token));
  let next = 0;
  async function onAny<T>(call: (one: Transport) => Promise<T>): Promise<T> {
    let last: unknown = new Error(`no endpoint in ${targets}`);
    for (let tried = 0; tried < all.length; tried++) {
      const one = all[next++ % all.length];
      try {
        return await call(one);
      } catch (error) {
        if (outcomeOf(error) !== "unknown") throw error;
        last = error;
      }
    }
    throw last;
  }
  return {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    unary: ((...call: any[]) => onAny((one) => (one.unary as any)(...call))) as Transport["unary"],
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    stream: ((...call: any[]) => onAny((one) => (one.stream as any)(...call))) as Transport["stream"],
  };
}

async function main(): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      // One coordinator, or several separated by commas.
      coordinator: { type: "string", default: "127.0.0.1:50050" },
      room: { type: "string", default: "127.0.0.1:50054" },
      orders: { type: "string", default: "127.0.0.1:50052" },
      event: { type: "string" },
      user: { type: "string", default: "ts-fan" },
      key: { type: "string" },
      protocol: { type: "string", default: "saga" },
      card: { type: "string", default: "tok_visa" },
      token: { type: "string", default: process.env.TICKETDROP_TOKEN },
    },
  });
  if (!args.event || !args.key || !(args.protocol! in PROTOCOLS)) {
    console.error("usage: journey --event E --key K [--user U] [--protocol 2pc|saga|lease]");
    return 2;
  }
  const bearer = login(args.user!, args.token);
  const room = createClient(WaitingRoomService, transport(args.room!, bearer));
  const coordinator = createClient(CoordinatorService, replicas(args.coordinator!, bearer));
  const orders = createClient(OrdersService, transport(args.orders!, bearer));
  const fan = { eventId: args.event, userId: args.user! };

  // Join: a place in line (a refresh would keep it).
  const joined = await room.join(fan);
  const positions: number[] = [];
  // Watch: positions until the turn comes, then the admission (the stream ends there).
  let token: string | undefined;
  for await (const update of room.watch(fan, { timeoutMs: 60_000 })) {
    switch (update.update.case) {
      case "waiting":
        positions.push(Number(update.update.value.position));
        break;
      case "admitted":
        token = update.update.value.token;
        break;
      case "soldOut":
        console.log(JSON.stringify({ outcome: "sold_out" }));
        return 1;
      case "expired":
        console.log(JSON.stringify({ outcome: "expired" }));
        return 1;
    }
    if (token) break;
  }
  if (!token) throw new Error("the watch ended without an admission");

  // Buy one seat (best available) with the admission token.
  const bought = await coordinator.purchase({
    userId: fan.userId,
    eventId: fan.eventId,
    quantity: 1,
    cardToken: args.card!,
    idempotencyKey: args.key,
    protocol: PROTOCOLS[args.protocol!],
    admissionToken: token,
  });
  // The ticket is real: orders-dynamo verifies its signed token.
  const ticket = bought.tickets[0];
  const verified = await orders.verifyTicket({ token: ticket.token });

  console.log(
    JSON.stringify({
      outcome: "bought",
      join_number: Number(joined.place?.joinNumber ?? 0),
      positions_seen: positions.length,
      txid: bought.txid,
      order_id: bought.orderId,
      seats: bought.seats.map((s) => s.seatId),
      amount_cents: Number(bought.amountCents),
      currency: bought.currency,
      ticket_id: ticket.ticketId,
      ticket_valid: verified.valid,
      ticket_seat: verified.ticket?.seatId ?? "",
    }),
  );
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConnectError) {
      console.log(
        JSON.stringify({
          code: Code[error.code],
          message: error.rawMessage,
          reason: reasonOf(error) ?? null,
          outcome: outcomeOf(error),
        }),
      );
    } else {
      console.error(error);
    }
    process.exit(1);
  },
);
