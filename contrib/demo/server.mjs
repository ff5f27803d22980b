// The chat demo's app server: a tiny Node.js HTTP server (no dependencies) that serves the demo
// page and rcomet.js, and is the app endpoint between browsers and rcomet's admin port, which
// browsers never reach. Messages are pushed through it; browsers receive them from rcomet's
// front port directly.
//
//   node contrib/demo/server.mjs [--listen 127.0.0.1:8080] [--admin http://127.0.0.1:8000]
//                                [--front http://127.0.0.1:8100]
//
// --admin is rcomet's admin port as this server reaches it; --front is rcomet's front port as the
// browsers reach it. It prints "demo ready http://HOST:PORT/" once listening. The endpoints:
//
//   GET  /                        the page (index.html)
//   GET  /rcomet.js               the client, clients/js/dist/rcomet.umd.js (build it first:
//                                 cd clients/js && npm ci && npm run build)
//   GET  /api/config              {"front": "<--front>"}: where the page subscribes
//   POST /api/say                 {"room", "nick", "text"} → rcomet /push to channel "chat-<room>"
//                                 with content {"nick","text","at"} (JSON in the string); 204
//   POST /api/here                {"room", "nick"}: this nickname is in the room (the page says so
//                                 every 10 s); 204
//   GET  /api/presence?room=R     {"subscribers": n, "nicks": [...]}: n from rcomet's
//                                 /info?cname=chat-R (connections subscribed), nicks seen in the
//                                 last 30 s
//   GET  /api/sign?cname=C        rcomet's /sign reply for a chat channel (for front.auth: token:
//                                 the page passes signUrl: "/api/sign")
//
// Rooms are 1-32 of [A-Za-z0-9_-], nicknames 1-24 characters, messages 1-500; request bodies at
// most 4 KB; anything else is a 400 with a reason.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:8080" },
    admin: { type: "string", default: "http://127.0.0.1:8000" },
    front: { type: "string", default: "http://127.0.0.1:8100" },
  },
});

const here = new URL(".", import.meta.url);
const PAGE = readFileSync(new URL("index.html", here));
const CLIENT = new URL("../../clients/js/dist/rcomet.umd.js", here);
const ROOM = /^[A-Za-z0-9_-]{1,32}$/;
const PRESENCE_MS = 30_000;
const MAX_BODY = 4096;
/** room → nick → last seen (ms). */
const seen = new Map();

class Bad extends Error {}

function check(cond, reason) {
  if (!cond) throw new Bad(reason);
}

function text(v, what, max) {
  check(typeof v === "string" && v.trim().length > 0 && v.length <= max, `${what}: 1-${max} characters`);
  return v.trim();
}

async function body(req) {
  let size = 0;
  const parts = [];
  for await (const part of req) {
    size += part.length;
    check(size <= MAX_BODY, `body over ${MAX_BODY} bytes`);
    parts.push(part);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString("utf8"));
  } catch {
    throw new Bad("body: not JSON");
  }
}

async function admin(path) {
  const r = await fetch(opts.admin + path, { signal: AbortSignal.timeout(5000) });
  const t = await r.text();
  if (!r.ok) throw new Error(`rcomet ${path.split("?")[0]}: HTTP ${r.status} ${t}`);
  return t;
}

function send(res, status, type, data) {
  res.writeHead(status, { "Content-Type": type, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff" });
  res.end(data);
}

const json = (res, v) => send(res, 200, "application/json; charset=utf-8", JSON.stringify(v));

async function route(req, res) {
  const url = new URL(req.url, "http://demo");
  const p = url.pathname;
  if (req.method === "GET" && p === "/") return send(res, 200, "text/html; charset=utf-8", PAGE);
  if (req.method === "GET" && p === "/rcomet.js") return send(res, 200, "text/javascript; charset=utf-8", readFileSync(CLIENT));
  if (req.method === "GET" && p === "/api/config") return json(res, { front: opts.front });
  if (req.method === "POST" && p === "/api/say") {
    const b = await body(req);
    check(ROOM.test(b.room ?? ""), "room: 1-32 of A-Z a-z 0-9 _ -");
    const content = JSON.stringify({ nick: text(b.nick, "nick", 24), text: text(b.text, "text", 500), at: Date.now() });
    await admin(`/push?cname=chat-${b.room}&content=${encodeURIComponent(content)}`);
    remember(b.room, b.nick.trim());
    return send(res, 204, "text/plain", "");
  }
  if (req.method === "POST" && p === "/api/here") {
    const b = await body(req);
    check(ROOM.test(b.room ?? ""), "room: 1-32 of A-Z a-z 0-9 _ -");
    remember(b.room, text(b.nick, "nick", 24));
    return send(res, 204, "text/plain", "");
  }
  if (req.method === "GET" && p === "/api/presence") {
    const room = url.searchParams.get("room") ?? "";
    check(ROOM.test(room), "room: 1-32 of A-Z a-z 0-9 _ -");
    const info = JSON.parse(await admin(`/info?cname=chat-${room}`));
    const now = Date.now();
    const nicks = [...(seen.get(room) ?? new Map())].filter(([, t]) => now - t < PRESENCE_MS).map(([n]) => n).sort();
    return json(res, { subscribers: info.subscribers, nicks });
  }
  if (req.method === "GET" && p === "/api/sign") {
    const cname = url.searchParams.get("cname") ?? "";
    check(cname.startsWith("chat-") && ROOM.test(cname.slice(5)), "cname: chat-<room>");
    return send(res, 200, "application/json; charset=utf-8", await admin(`/sign?cname=${cname}&expires=60`));
  }
  send(res, 404, "text/plain; charset=utf-8", "not found\n");
}

function remember(room, nick) {
  if (!seen.has(room)) seen.set(room, new Map());
  const nicks = seen.get(room);
  nicks.set(nick, Date.now());
  // Bounded: a room forgets its oldest nicknames past 1,000.
  if (nicks.size > 1000) nicks.delete(nicks.keys().next().value);
}

const server = createServer((req, res) => {
  route(req, res).catch((e) => {
    if (e instanceof Bad) send(res, 400, "text/plain; charset=utf-8", e.message + "\n");
    else send(res, 502, "text/plain; charset=utf-8", String(e.message) + "\n");
  });
});
const [host, port] = [opts.listen.slice(0, opts.listen.lastIndexOf(":")), Number(opts.listen.split(":").pop())];
server.listen(port, host, () => {
  const a = server.address();
  console.log(`demo ready http://${a.address}:${a.port}/`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => server.close(() => process.exit(0)));
