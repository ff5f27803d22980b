// The browser test of rcomet.js (clients/js), the chat demo (contrib/demo) and the admin page:
// headless Chromium (the system's, driven by playwright-core) against a real rcomet, through the
// cuttable proxy of lib.mjs.
//
//   node client.mjs --server PATH/TO/rcomet [--engine epoll|io_uring] [--chromium PATH] [--shots DIR]
//
// It builds clients/js first (esbuild, clients/js/node_modules) and serves the UMD bundle and
// client.html from the proxy, so the page, /ws, /sse and /poll share one origin. Scenarios, each
// on its own channel, with pushes at a steady pace on the admin port:
// - ws:      the client on WebSocket; the proxy resets its connection, then ends it (FIN). Each
//            reconnect must ask for seq=<last delivered + 1>&epoch=<epoch>, and is let through
//            only after more messages were pushed (they must come from the replay ring).
// - sse:     the proxy refuses every WebSocket upgrade (403): the client falls back to SSE with
//            ids; the proxy ends the stream once; the reconnect names last_event_id=<epoch>:<last>.
// - poll:    upgrades and /sse refused: the client falls back to long-poll (fetch); the proxy
//            resets its connection once.
//            In all three the page's list must be exactly the pushed list, in order, with no reset
//            and no gap.
// - jsonp:   long-poll by JSONP (forced by option; the client also turns to it by itself when a
//            fetch is refused), cut once, exactly once and in order as above.
// - restart: rcomet is stopped (SIGTERM, no snapshot) and started again on the same ports; the
//            client's reconnect is held until messages were pushed to the new server. The client
//            must report one reset (the new epoch) and then get exactly the new messages.
// - tabs:    two tabs of one origin, each with its own RComet: one connection through the proxy,
//            both get every message; the leader tab is closed, the other takes over with a new
//            connection resuming at seq=<the last it delivered + 1> and misses nothing.
// - admin:   the admin page (/admin on the admin port) shows a push within a second (its
//            /stats/stream sends one event a second); screenshot admin.png.
// - demo:    the chat demo's app server (contrib/demo/server.mjs) in front of the same rcomet; two
//            people in separate browser contexts chat in a room and see each other's messages and
//            presence; screenshot demo.png.
// Every wait has a timeout; the whole run is bounded by RUN_TIMEOUT_MS. Prints one "ok" line per
// scenario and exits 0, or prints why and exits 1.

import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { chromium } from "playwright-core";
import {
  Proxy, Pusher, STEP_TIMEOUT_MS, assertEq, assertList, fail, push, query, startServer, stopServer, until,
} from "./lib.mjs";

const RUN_TIMEOUT_MS = 110_000;
const PAGE_PATH = "/client-test.html";
// Short reconnect delays for the run (the client's defaults are 500 ms to 30 s).
const BACKOFF = { base: 100, cap: 400 };
// The admin page must show a push within this long (its stream sends four events a second).
const ADMIN_WITHIN_MS = 1000;
const HTML = "text/html; charset=utf-8";
const JS = "text/javascript; charset=utf-8";

const { values: opts } = parseArgs({
  options: {
    server: { type: "string" },
    engine: { type: "string", default: "epoll" },
    chromium: { type: "string", default: process.env.RCOMET_CHROMIUM || "/usr/bin/chromium" },
    shots: { type: "string" },
  },
});

const root = new URL("../../", import.meta.url);

/** Builds clients/js/dist (esbuild) and returns the UMD bundle. */
function buildClient() {
  const dir = new URL("clients/js/", root).pathname;
  const r = spawnSync(process.execPath, ["build.mjs"], { cwd: dir, encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) {
    fail(`building clients/js failed (run \`make js-deps\`, i.e. npm ci in clients/js): ${r.stderr || r.error}`);
  }
  return readFileSync(new URL("clients/js/dist/rcomet.umd.js", root), "utf8");
}

/** What client `name` of `page` saw, and where it is in `cname`. */
const seen = (page, name, cname) => page.evaluate(([n, c]) => window.seen(n, c), [name, cname]);

async function waitData(page, name, cname, n, what) {
  let last = null;
  await until(`${name}: ${what} (${n} messages)`, async () => {
    last = await seen(page, name, cname);
    return last.data.length >= n;
  }).catch((e) => fail(`${e.message}; it saw ${JSON.stringify({ ...last, data: last?.data.length })}`));
}

async function waitOpen(page, name, cname, transport) {
  let st = null;
  await until(`${name}: open on ${transport}`, async () => {
    st = await seen(page, name, cname);
    return st.state === "open" && st.transport === transport;
  }).catch((e) => fail(`${e.message}; states ${JSON.stringify(st?.states)}`));
  return st;
}

/** Checks the page's data list against what was pushed: every seq once, in order, no reset or gap. */
function checkExact(st, pusher, cname, { from = 1 } = {}) {
  const want = [...pusher.contents, "end"];
  assertList(st.data.map((m) => m.content), want, `${cname} contents in arrival order`);
  assertList(st.data.map((m) => m.seq), want.map((_, i) => i + from), `${cname} seqs in arrival order`);
  assertEq(st.gaps, [], `${cname} gaps`);
  assertEq(st.errors, [], `${cname} errors`);
  return want.length;
}

/** Stops the pusher, pushes "end" and waits until the page has everything. */
async function finish(page, name, cname, pusher, admin) {
  await pusher.stop();
  await push(admin, cname, "end");
  await waitData(page, name, cname, pusher.contents.length + 1, "every message up to the last push").catch(() => {});
  return seen(page, name, cname);
}

/**
 * Breaks the client's connection once per entry of `breaks` ("reset", "fin"), holding each
 * reconnect until more was pushed; `resumeOf(head)` reads the position the reconnect asks for.
 */
async function breakAndResume({ page, proxy }, name, cname, pusher, breaks, resumeOf) {
  const resumes = [];
  let seenCount = 0;
  for (const how of breaks) {
    seenCount += 10;
    await waitData(page, name, cname, seenCount, `live messages before "${how}"`);
    const before = proxy.connsFor(cname).length;
    proxy.holding = true;
    proxy.cut(proxy.connsFor(cname)[before - 1], how);
    const next = await until(`${cname}: the client reconnecting after "${how}"`, async () => proxy.connsFor(cname)[before]);
    proxy.holding = false;
    const st = await seen(page, name, cname);
    const from = resumeOf(next.head, st.position);
    assertEq(from, st.position.seq, `${cname}: the reconnect resumes after the last message delivered`);
    await until(`${cname}: pushes while the client is away`, async () => pusher.acked >= from + 2);
    const acked = pusher.acked;
    proxy.connect(next);
    resumes.push(`${how} resumed at seq ${from} with ${acked - from + 1} replayed`);
    seenCount = acked;
  }
  await waitData(page, name, cname, seenCount + 10, "live messages after the last reconnect");
  return resumes;
}

async function transportScenario(env, transport, breaks, resumeOf, { cname = `js-${transport}`, options = {}, tried } = {}) {
  const { page, server } = env;
  await page.evaluate(([c, o]) => window.open_(c, { channel: c, share: false, ...o }), [cname, { backoff: BACKOFF, ...options }]);
  await waitOpen(page, cname, cname, transport);
  // Long-poll has no epochs; the other two learn it from the opening marker, which comes just
  // after the link reports open (a WebSocket opens before its first frame).
  if (transport !== "poll") {
    await until(`${cname}: the epoch from the opening marker`, async () => (await seen(page, cname, cname)).position?.epoch != null);
  }
  const pusher = new Pusher(server.admin, cname, `${transport}-`);
  pusher.start();
  const resumes = await breakAndResume(env, cname, cname, pusher, breaks, resumeOf);
  const st = await finish(page, cname, cname, pusher, server.admin);
  await page.evaluate((c) => window.cl[c].client.close(), cname);
  const n = checkExact(st, pusher, cname);
  assertEq(st.resets, [], `${cname} resets`);
  assertEq(st.transport, transport, `${cname} transport at the end`);
  const others = st.states.filter(([s, t]) => s === "connecting" && t !== transport).map(([, t]) => t);
  assertEq(others, tried ?? { ws: [], sse: ["ws"], poll: ["ws", "sse"] }[transport], `${cname} transports tried before ${transport}`);
  return `${n} messages exactly once, in order (${resumes.join("; ")})`;
}

async function restartScenario(env, restart) {
  const { page, proxy } = env;
  const cname = "js-restart";
  await page.evaluate(([c, b]) => window.open_(c, { channel: c, backoff: b, share: false }), [cname, BACKOFF]);
  await waitOpen(page, cname, cname, "ws");
  for (let i = 1; i <= 5; i++) await push(env.server.admin, cname, `old-${i}`);
  await waitData(page, cname, cname, 5, "messages before the restart");
  const before = await seen(page, cname, cname);
  const oldEpoch = before.position.epoch;
  const conns = proxy.connsFor(cname).length;
  // Reconnects wait at the proxy until the new server has messages.
  proxy.holding = true;
  await restart();
  const held = await until(`${cname}: a reconnect`, async () => proxy.connsFor(cname).slice(conns).find((c) => c.held));
  const after = [];
  for (let i = 1; i <= 3; i++) {
    await push(env.server.admin, cname, `new-${i}`);
    after.push(`new-${i}`);
  }
  proxy.holding = false;
  const q = query(held.head);
  assertEq([q.get("seq"), q.get("epoch")], ["6", String(oldEpoch)], `${cname}: the reconnect resumes where it was`);
  for (const c of proxy.connsFor(cname).slice(conns)) if (c.held) proxy.connect(c);
  await waitData(page, cname, cname, 8, "the new server's messages");
  const st = await seen(page, cname, cname);
  await page.evaluate((c) => window.cl[c].client.close(), cname);
  assertList(st.data.map((m) => m.content), ["old-1", "old-2", "old-3", "old-4", "old-5", ...after], `${cname} contents`);
  assertList(st.data.map((m) => m.seq), [1, 2, 3, 4, 5, 1, 2, 3], `${cname} seqs`);
  assertEq(st.resets.length, 1, `${cname} resets told`);
  const r = st.resets[0];
  assertEq([r.cname, r.seq, r.was], [cname, 1, { seq: 6, epoch: oldEpoch }], `${cname} the reset`);
  if (r.epoch === oldEpoch || r.epoch === null) fail(`${cname}: the reset names epoch ${r.epoch}, the old one was ${oldEpoch}`);
  assertEq(st.gaps, [], `${cname} gaps`);
  return `reset told (epoch ${oldEpoch} → ${r.epoch}), then ${after.length} new messages exactly once`;
}

async function tabsScenario(env) {
  const { browser, proxy, origin, server } = env;
  const cname = "js-tabs";
  const context = await browser.newContext();
  const open = async () => {
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    await page.goto(`${origin}${PAGE_PATH}`);
    await page.evaluate(([c, b]) => window.open_("tab", { channel: c, backoff: b, shareWait: 100 }), [cname, BACKOFF]);
    return page;
  };
  const one = await open();
  await until("the first tab leading and open", async () => {
    const st = await seen(one, "tab", cname);
    return st.leader && st.state === "open";
  });
  const two = await open();
  await until("the second tab following an open connection", async () => {
    const st = await seen(two, "tab", cname);
    return !st.leader && st.state === "open";
  });
  const pusher = new Pusher(server.admin, cname, "tabs-");
  pusher.start();
  await waitData(one, "tab", cname, 10, "messages in the first tab");
  await waitData(two, "tab", cname, 10, "messages in the second tab");
  assertEq(proxy.connsFor(cname).length, 1, `${cname}: connections for two tabs`);
  proxy.holding = true;
  await one.close();
  const next = await until(`${cname}: the second tab connecting`, async () => proxy.connsFor(cname)[1]);
  proxy.holding = false;
  const st2 = await seen(two, "tab", cname);
  if (!st2.leader) fail(`${cname}: the second tab connects without leading`);
  const q = query(next.head);
  assertEq([Number(q.get("seq")), q.get("epoch")], [st2.position.seq, String(st2.position.epoch)], `${cname}: the takeover resumes after the last message the tab delivered`);
  const from = st2.position.seq;
  await until(`${cname}: pushes while no tab is connected`, async () => pusher.acked >= from + 2);
  const replayed = pusher.acked - from + 1;
  proxy.connect(next);
  await waitData(two, "tab", cname, pusher.acked + 10, "live messages after the takeover");
  const st = await finish(two, "tab", cname, pusher, server.admin);
  const n = checkExact(st, pusher, cname);
  assertEq(st.resets, [], `${cname} resets`);
  assertEq(proxy.connsFor(cname).length, 2, `${cname}: connections in all`);
  await context.close();
  return `one connection for two tabs; the second took over at seq ${from} (${replayed} replayed), ${n} messages exactly once`;
}

async function adminScenario(env) {
  const { browser, server } = env;
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  await page.goto(`http://${server.admin}/admin`);
  await until("the admin page's first events", async () => page.evaluate(() => window.adminStats.events >= 2));
  const shown = () => page.evaluate(() => Number(document.getElementById("pushes").textContent));
  const before = await shown();
  const t0 = Date.now();
  await push(server.admin, "admin-probe", "probe");
  await until("the admin page showing the push", async () => (await shown()) > before, 5000);
  const took = Date.now() - t0;
  if (took > ADMIN_WITHIN_MS) fail(`the admin page showed the push after ${took} ms (want within ${ADMIN_WITHIN_MS})`);
  // Some traffic for the chart and the screenshot: a steady push to three subscribers.
  const subs = [];
  for (let i = 0; i < 3; i++) {
    const ctl = new AbortController();
    subs.push(ctl);
    fetch(`http://${server.front}/stream?cname=admin-chart`, { signal: ctl.signal }).then((r) => r.body?.pipeTo(new WritableStream())).catch(() => {});
  }
  const pusher = new Pusher(server.admin, "admin-chart", "chart-");
  pusher.start();
  await delay(4500);
  const text = await page.evaluate(() => ({
    subscribers: document.getElementById("subscribers").textContent,
    workers: document.querySelectorAll("#workers tr").length,
    deliveries: Number(document.getElementById("deliveries-rate").textContent.replace("k", "e3")),
  }));
  assertEq(text.workers, 2, "worker rows on the admin page");
  if (Number(text.subscribers) < 3) fail(`the admin page shows ${text.subscribers} subscribers, want at least 3`);
  if (!(text.deliveries > 0)) fail(`the admin page shows ${text.deliveries} deliveries/s while pushing to 3 subscribers`);
  await shot(page, "admin.png");
  await pusher.stop();
  for (const s of subs) s.abort();
  await page.close();
  return `showed a push after ${took} ms (${pusher.contents.length} pushed for the chart)`;
}

async function shot(page, name) {
  if (!opts.shots) return;
  mkdirSync(opts.shots, { recursive: true });
  await page.screenshot({ path: `${opts.shots}/${name}` });
  console.log(`screenshot: ${opts.shots}/${name}`);
}

/** Starts contrib/demo/server.mjs and reads its address from its ready line. */
function startDemo(server, front) {
  const script = new URL("contrib/demo/server.mjs", root).pathname;
  const child = spawn(process.execPath, [script, "--listen", "127.0.0.1:0", "--admin", `http://${server.admin}`, "--front", front], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the demo server printed no ready line within 10 s")), 10_000);
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/demo ready (\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`the demo server exited (${code})`)));
  });
}

async function demoScenario(env, resources) {
  const { browser, origin, server } = env;
  const demo = await startDemo(server, origin);
  resources.push(() => demo.child.kill("SIGKILL"));
  const person = async (nick) => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 640 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    await page.goto(`${demo.url}?room=lobby&nick=${nick}`);
    await until(`${nick}: the chat live`, async () => (await page.textContent("#status")).startsWith("live"));
    return page;
  };
  const say = async (page, text) => {
    await page.fill("#text", text);
    await page.press("#text", "Enter");
  };
  const got = (page, text) => until(`the message "${text}"`, async () => page.evaluate((t) => window.chat.received.some((m) => m.text === t), text));
  const alice = await person("alice");
  const bob = await person("bob");
  await say(alice, "hi bob, this arrived over rcomet");
  await got(bob, "hi bob, this arrived over rcomet");
  await say(bob, "hello alice! pushed to the lobby channel");
  await got(alice, "hello alice! pushed to the lobby channel");
  await say(alice, "one connection per browser, resumed by seq and epoch");
  await got(bob, "one connection per browser, resumed by seq and epoch");
  await until("alice seeing bob present", async () => {
    const people = await alice.$$eval("#people li", (els) => els.map((e) => e.textContent));
    return people.includes("alice") && people.includes("bob") && (await alice.textContent("#count")) === "2";
  });
  const bobSaw = await bob.evaluate(() => window.chat.received.map((m) => `${m.nick}: ${m.text}`));
  assertEq(bobSaw, [
    "alice: hi bob, this arrived over rcomet",
    "bob: hello alice! pushed to the lobby channel",
    "alice: one connection per browser, resumed by seq and epoch",
  ], "bob's messages");
  await shot(alice, "demo.png");
  await alice.context().close();
  await bob.context().close();
  return "two people chat in a room and see each other present";
}

async function main() {
  if (!opts.server) fail("usage: node client.mjs --server PATH/TO/rcomet [--engine E] [--chromium PATH] [--shots DIR]");
  const resources = [];
  process.on("exit", () => {
    for (const r of resources.reverse()) {
      try {
        r();
      } catch {
        // best effort
      }
    }
  });
  for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(1));
  const timer = setTimeout(() => {
    console.error(`client browser test: did not finish within ${RUN_TIMEOUT_MS} ms`);
    process.exit(1);
  }, RUN_TIMEOUT_MS);

  const bundle = buildClient();
  const env = { server: await startServer(opts.server, opts.engine) };
  resources.push(() => env.server.child.kill("SIGKILL"));
  const frontPort = Number(env.server.front.split(":").pop());
  const html = readFileSync(new URL("./client.html", import.meta.url), "utf8");
  const proxy = new Proxy(frontPort, { [PAGE_PATH]: { type: HTML, body: html }, "/rcomet.js": { type: JS, body: bundle } });
  const port = await proxy.listen();
  resources.push(() => proxy.close());
  const browser = await chromium.launch({ executablePath: opts.chromium, headless: true, args: ["--no-sandbox"], timeout: 20_000 });
  resources.push(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  const origin = `http://127.0.0.1:${port}`;
  await page.goto(`${origin}${PAGE_PATH}`);
  Object.assign(env, { page, proxy, browser, origin });

  const run = async (name, f) => {
    const t = Date.now();
    const what = await f();
    console.log(`${name}: ok: ${what} [${((Date.now() - t) / 1000).toFixed(1)} s]`);
  };
  await run("client ws", () => transportScenario(env, "ws", ["reset", "fin"], (head, p) => {
    const q = query(head);
    assertEq(q.get("epoch"), String(p.epoch), "ws reconnect epoch");
    return Number(q.get("seq"));
  }));
  const upgrade = (head) => /^upgrade:\s*websocket/im.test(head);
  proxy.refuse = upgrade;
  await run("client sse fallback", () => transportScenario(env, "sse", ["fin"], (head, p) => {
    const [e, s] = (query(head).get("last_event_id") ?? "").split(":");
    assertEq(e, String(p.epoch), "sse reconnect epoch");
    return Number(s) + 1;
  }));
  proxy.refuse = (head) => upgrade(head) || head.startsWith("GET /sse");
  await run("client poll fallback", () => transportScenario(env, "poll", ["reset"], (head) => Number(query(head).get("seq"))));
  proxy.refuse = null;
  // Long-poll by JSONP (script tags on /sub with cb=), as where CORS is not available.
  await run("client jsonp", () => transportScenario(env, "poll", ["reset"], (head) => {
    if (!/^GET \/sub\?.*&cb=__rcomet\d+ /.test(head)) fail(`not a JSONP request: ${head.split("\r\n")[0]}`);
    return Number(query(head).get("seq"));
  }, { cname: "js-jsonp", options: { transports: ["poll"], jsonp: true }, tried: [] }));
  await run("client restart", () => restartScenario(env, async () => {
    const { admin, front } = env.server;
    await stopServer(env.server);
    env.server = await startServer(opts.server, opts.engine, { admin, front });
  }));
  await run("client tabs", () => tabsScenario(env));
  await run("admin page", () => adminScenario(env));
  await run("demo", () => demoScenario(env, resources));
  if (problems.length) fail(problems.join("\n"));
  clearTimeout(timer);
  console.log(`client browser test (${opts.engine}, ${browser.version()}): ok`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`client browser test failed: ${e.stack || e}`);
    process.exit(1);
  },
);
