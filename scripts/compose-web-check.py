#!/usr/bin/env python3
"""The compose deployment's web page, checked from the host as a browser uses it
(`make compose-test`, after the drops; no packages beyond the standard library).

1. GET / answers the built page; its script loads; its content security policy lets
   it call the services' published addresses.
2. GetSite, called over gRPC-Web with the page's Origin as the page calls it, hands out
   exactly the services' published addresses and says development sign-in is on.
3. Each of those services lets the page's origin call it (CORS preflight), refuses
   another origin's preflight, and answers gRPC-Web health SERVING.
4. inventory lists the drops' events over gRPC-Web, with no token.
5. A buyer of a drop, signed in with the page's DevLogin, reads their confirmed order
   and its tickets from orders-dynamo; the same call without the token is refused
   UNAUTHENTICATED.

Usage: compose-web-check.py WEB_PORT "COORDINATOR_PORTS" INVENTORY_PORT ORDERS_PORT
       WAITING_ROOM_PORT BUYER BUYER_EVENT EVENT...
"""

import http.client
import re
import struct
import sys
import urllib.parse

web_port, coordinator_ports, inventory_port, orders_port, room_port, buyer, buyer_event = sys.argv[1:8]
events = sys.argv[8:]
page = f"http://127.0.0.1:{web_port}"
problems = []


def local(port):
    return f"http://127.0.0.1:{port}"


def check(ok, what):
    if not ok:
        problems.append(what)
    return ok


def say(text):
    print(f"compose-test:   {text}")


def request(url, method="GET", path="/", body=None, headers=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    conn.request(method, u.path.rstrip("/") + path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


# --- protocol buffers: the little this needs (varints, strings, nested messages) ----------------


def varint(b, i):
    shift = n = 0
    while True:
        n |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if b[i - 1] < 0x80:
            return n, i


def fields(b):
    out, i = [], 0
    while i < len(b):
        key, i = varint(b, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(b, i)
        elif wire == 2:
            size, i = varint(b, i)
            value, i = b[i : i + size], i + size
        elif wire == 1:
            value, i = b[i : i + 8], i + 8
        elif wire == 5:
            value, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        out.append((number, value))
    return out


def field(b, number, default=None):
    return next((v for n, v in fields(b) if n == number), default)


def put_varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def string(number, text):
    data = text.encode()
    return put_varint(number << 3 | 2) + put_varint(len(data)) + data


def grpc_web(url, method, message=b"", token=None, origin=page):
    """One unary call as the page's Connect transport makes it: (HTTP status, the
    Access-Control-Allow-Origin answered, grpc-status, the answer's message)."""
    headers = {
        "content-type": "application/grpc-web+proto",
        "accept": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "origin": origin,
    }
    if token:
        headers["authorization"] = f"Bearer {token}"
    framed = b"\0" + struct.pack(">I", len(message)) + message
    response, body = request(url, "POST", "/" + method, framed, headers)
    data, trailers, i = b"", {}, 0
    while i + 5 <= len(body):
        flag, size = body[i], struct.unpack(">I", body[i + 1 : i + 5])[0]
        frame, i = body[i + 5 : i + 5 + size], i + 5 + size
        if flag & 0x80:
            for line in frame.decode().split("\r\n"):
                if ":" in line:
                    name, value = line.split(":", 1)
                    trailers[name.strip().lower()] = value.strip()
        else:
            data += frame
    status = trailers.get("grpc-status", response.getheader("grpc-status"))
    return response.status, response.getheader("access-control-allow-origin"), int(status) if status else None, data


# --- 1. the page ----------------------------------------------------------------------------------

response, html = request(page)
check(
    response.status == 200 and "text/html" in (response.getheader("content-type") or ""),
    f"GET {page}/: {response.status} {response.getheader('content-type')}",
)
policy = response.getheader("content-security-policy") or ""
scripts = re.findall(rb'<script[^>]+src="(/assets/[^"]+\.js)"', html)
if check(scripts, f"GET {page}/: no /assets/*.js script in the page ({html[:200]!r})"):
    script = scripts[0].decode()
    response, js = request(page, path=script)
    check(
        response.status == 200
        and "javascript" in (response.getheader("content-type") or "")
        and len(js) > 10_000
        and "immutable" in (response.getheader("cache-control") or ""),
        f"GET {script}: {response.status} {response.getheader('content-type')}, {len(js)} bytes, "
        f"cache-control {response.getheader('cache-control')!r}",
    )
    say(f"page: GET / {len(html)} bytes of HTML; its script {script}: {len(js)} bytes")
published = [local(p) for p in coordinator_ports.split()] + [local(inventory_port), local(orders_port), local(room_port)]
connect = re.search(r"connect-src ([^;]*)", policy)
check(
    connect and all(url in connect.group(1).split() for url in published),
    f"the page's connect-src {connect and connect.group(1)!r} leaves out some of {published}",
)

# --- 2. GetSite ---------------------------------------------------------------------------------

status, _, grpc_status, site = grpc_web(page, "ticketdrop.v1.WebService/GetSite")
check(status == 200 and grpc_status == 0, f"GetSite over gRPC-Web: HTTP {status}, grpc-status {grpc_status}")
got = {
    "coordinator_urls": [v.decode() for n, v in fields(site) if n == 1],
    "inventory_url": field(site, 2, b"").decode(),
    "orders_url": field(site, 3, b"").decode(),
    "waiting_room_url": field(site, 4, b"").decode(),
    "dev_login": field(site, 5, 0) == 1,
}
expected = {
    "coordinator_urls": [local(p) for p in coordinator_ports.split()],
    "inventory_url": local(inventory_port),
    "orders_url": local(orders_port),
    "waiting_room_url": local(room_port),
    "dev_login": True,
}
check(got == expected, f"GetSite: expected {expected}, got {got}")
say(
    f"GetSite over gRPC-Web: coordinators {' '.join(got['coordinator_urls'])}, inventory {got['inventory_url']}, "
    f"orders {got['orders_url']}, waiting room {got['waiting_room_url']}, dev login {got['dev_login']}"
)

# --- 3. every service the page calls ---------------------------------------------------------------

preflight = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type,x-grpc-web,x-user-agent",
}
services = got["coordinator_urls"] + [got["inventory_url"], got["orders_url"], got["waiting_room_url"]]
for url in services:
    response, _ = request(url, "OPTIONS", "/grpc.health.v1.Health/Check", headers=dict(preflight, origin=page))
    allowed = response.getheader("access-control-allow-origin")
    check(
        response.status in (200, 204) and allowed == page,
        f"{url}: the page's preflight: {response.status}, allow-origin {allowed!r}",
    )
    response, _ = request(
        url, "OPTIONS", "/grpc.health.v1.Health/Check", headers=dict(preflight, origin="http://elsewhere.example")
    )
    allowed = response.getheader("access-control-allow-origin")
    check(allowed is None, f"{url}: another origin's preflight was allowed ({allowed!r})")
    status, allowed, grpc_status, health = grpc_web(url, "grpc.health.v1.Health/Check")
    check(
        status == 200 and allowed == page and grpc_status == 0 and field(health, 1) == 1,
        f"{url}: gRPC-Web health: HTTP {status}, allow-origin {allowed!r}, grpc-status {grpc_status}, "
        f"status {field(health, 1)}",
    )
say(f"{len(services)} services: the page's origin allowed, another origin refused, gRPC-Web health SERVING")

# --- 4. browsing needs no token --------------------------------------------------------------------

_, _, grpc_status, listed = grpc_web(
    got["inventory_url"], "ticketdrop.v1.InventoryService/ListEvents", put_varint(1 << 3) + put_varint(100)
)
ids = {field(event, 1, b"").decode() for n, event in fields(listed) if n == 1}
check(
    grpc_status == 0 and set(events) <= ids,
    f"ListEvents over gRPC-Web: grpc-status {grpc_status}, {sorted(ids)} lacks some of {events}",
)

# --- 5. a buyer signs in through the page and reads their tickets -----------------------------------

_, _, grpc_status, login = grpc_web(page, "ticketdrop.v1.WebService/DevLogin", string(1, buyer))
token = field(login, 1, b"").decode()
check(grpc_status == 0 and token.count(".") == 2, f"DevLogin as {buyer}: grpc-status {grpc_status}")
list_orders = string(1, buyer)
_, _, refused, _ = grpc_web(got["orders_url"], "ticketdrop.v1.OrdersService/ListOrders", list_orders)
check(refused == 16, f"ListOrders without a token: grpc-status {refused}, not 16 (UNAUTHENTICATED)")
_, _, grpc_status, orders = grpc_web(got["orders_url"], "ticketdrop.v1.OrdersService/ListOrders", list_orders, token)
mine = [order for n, order in fields(orders) if n == 1 and field(order, 3, b"").decode() == buyer_event]
# Order: 4 status (3 CONFIRMED), 12 tickets.
confirmed = [order for order in mine if field(order, 4) == 3 and any(n == 12 for n, _ in fields(order))]
check(
    grpc_status == 0 and confirmed,
    f"ListOrders as {buyer}: grpc-status {grpc_status}, {len(mine)} orders of {buyer_event}, none CONFIRMED with tickets",
)
tickets = sum(1 for order in confirmed for n, _ in fields(order) if n == 12)
say(
    f"inventory lists the {len(events)} drops' events; {buyer}, signed in with DevLogin, reads {len(confirmed)} "
    f"confirmed order of {buyer_event} with {tickets} ticket(s); without a token: UNAUTHENTICATED"
)

if problems:
    sys.exit("compose-test: FAILED: the web page: " + "; ".join(problems))
