#!/usr/bin/env node
// The local stack's SMS provider: the part of Twilio's Messages API that the notifier
// uses, recording every message instead of sending it. It needs nothing but Node.
//
//   POST /2010-04-01/Accounts/{account}/Messages.json   form fields To, From, Body;
//        HTTP basic auth with the same account as user  -> 201 and the message as JSON
//   GET  /messages[?to=+4915112345678]                  -> {"messages": [...]}, oldest first
//   GET  /healthz                                       -> 200
//
// Messages are appended to --data (JSON lines) and read back at start, so a restart keeps
// them.  Usage: node scripts/sms-provider.mjs --port 51090 --data .stack/sms/messages.jsonl
// (--host 0.0.0.0 in a container; loopback by default)

import { createServer } from "node:http";
import { appendFileSync, existsSync, readFileSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { randomBytes } from "node:crypto";

const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const host = arg("--host", "127.0.0.1");
const port = Number(arg("--port", "51090"));
const data = arg("--data", "");

const messages = [];
if (data) {
  mkdirSync(dirname(data), { recursive: true });
  if (existsSync(data)) {
    for (const line of readFileSync(data, "utf8").split("\n")) {
      if (line.trim()) messages.push(JSON.parse(line));
    }
  }
}

const send = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};

// Twilio's error shape: {"code", "message", "status"}.
const refuse = (res, status, code, message) => send(res, status, { code, message, status });

const server = createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (req.method === "GET" && url.pathname === "/healthz") return send(res, 200, { ok: true });
  if (req.method === "GET" && url.pathname === "/messages") {
    const to = url.searchParams.get("to");
    return send(res, 200, { messages: messages.filter((m) => !to || m.to === to) });
  }
  const path = url.pathname.match(/^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/);
  if (req.method !== "POST" || !path) return refuse(res, 404, 20404, "The requested resource was not found");
  const account = decodeURIComponent(path[1]);
  const auth = (req.headers.authorization || "").match(/^Basic (.+)$/);
  const [user, token] = auth ? Buffer.from(auth[1], "base64").toString().split(":") : [];
  if (user !== account || !token) return refuse(res, 401, 20003, "Authenticate");
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const form = new URLSearchParams(body);
    const to = form.get("To") || "";
    const from = form.get("From") || "";
    const text = form.get("Body") || "";
    if (!/^\+[0-9]{8,15}$/.test(to)) return refuse(res, 400, 21211, `The 'To' number ${to} is not a valid phone number.`);
    if (!from) return refuse(res, 400, 21603, "A 'From' phone number is required.");
    if (!text) return refuse(res, 400, 21602, "Message body is required.");
    const message = {
      sid: "SM" + randomBytes(16).toString("hex"),
      account_sid: account,
      to,
      from,
      body: text,
      status: "queued",
      date_created: new Date().toISOString(),
    };
    messages.push(message);
    if (data) appendFileSync(data, JSON.stringify(message) + "\n");
    send(res, 201, message);
  });
});

server.listen(port, host, () => {
  console.log(`sms-provider: listening on http://${host}:${port} (${messages.length} messages recorded)`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
