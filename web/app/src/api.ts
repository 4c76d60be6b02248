// The page's clients of the mesh, generated from proto/ (protoc-gen-es) and called over
// gRPC-Web (Connect's web transport). Every call carries the signed-in user's token.

import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { CoordinatorService } from "./gen/ticketdrop/v1/coordinator_pb";
import { InventoryService } from "./gen/ticketdrop/v1/inventory_pb";
import { OrdersService } from "./gen/ticketdrop/v1/orders_pb";
import { WaitingRoomService } from "./gen/ticketdrop/v1/waiting_room_pb";
import { WebService, type GetSiteResponse } from "./gen/ticketdrop/v1/web_pb";
import { session } from "./session";

const withToken: Interceptor = (next) => async (request) => {
  const token = session.current()?.token;
  if (token) request.header.set("authorization", `Bearer ${token}`);
  return next(request);
};

function transport(baseUrl: string): Transport {
  return createGrpcWebTransport({ baseUrl, interceptors: [withToken] });
}

/** The web server itself (same origin): the site's configuration and development sign-in. */
export const web: Client<typeof WebService> = createClient(WebService, transport(location.origin));

export interface Mesh {
  inventory: Client<typeof InventoryService>;
  orders: Client<typeof OrdersService>;
  room: Client<typeof WaitingRoomService>;
  /** Runs `call` on a coordinator, moving on to the next when one does not answer. */
  coordinator<T>(call: (client: Client<typeof CoordinatorService>) => Promise<T>): Promise<T>;
  /** The coordinator the page uses now (for streams, which reconnect on their own). */
  currentCoordinator(): Client<typeof CoordinatorService>;
  site: GetSiteResponse;
}

/** Whether an error means the server was not reached (another replica may answer). */
export function unreachable(error: unknown): boolean {
  const e = ConnectError.from(error);
  return e.code === Code.Unavailable || (e.code === Code.Unknown && /fetch|network/i.test(e.rawMessage));
}

export function mesh(site: GetSiteResponse): Mesh {
  const coordinators = site.coordinatorUrls.map((url) => createClient(CoordinatorService, transport(url)));
  let current = 0;
  return {
    site,
    inventory: createClient(InventoryService, transport(site.inventoryUrl)),
    orders: createClient(OrdersService, transport(site.ordersUrl)),
    room: createClient(WaitingRoomService, transport(site.waitingRoomUrl)),
    currentCoordinator: () => coordinators[current],
    async coordinator(call) {
      let last: unknown;
      // Each coordinator once, starting with the one that answered last.
      for (let tried = 0; tried < coordinators.length; tried++) {
        try {
          return await call(coordinators[current]);
        } catch (error) {
          if (!unreachable(error)) throw error;
          last = error;
          current = (current + 1) % coordinators.length;
        }
      }
      throw last;
    },
  };
}
