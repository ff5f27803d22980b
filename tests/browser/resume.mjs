// The browser test: headless Chromium (the system's, driven by playwright-core; no browser is
// downloaded) against a real rcomet, checking that a native WebSocket and a native EventSource
// with ids get every message exactly once, in order, while their connections are dropped and
// re-opened mid-stream and pushes keep coming.
//
//   node resume.mjs --server PATH/TO/rcomet [--engine epoll|io_uring] [--chromium /usr/bin/chromium]
//
// What it sets up, all on 127.0.0.1:
// - rcomet, started from --server with port 0 for both ports (read back from its ready line);
// - a TCP proxy in front of rcomet's front port, through which the browser reaches it. The proxy
//   can cut a connection (FIN or RST) from outside, and can hold a new connection until the
//   harness lets it through, so that messages pushed while the client was away are certain to
//   be there before it resumes (they must come from the replay ring, not from live delivery);
// - the page (page.html), which the proxy answers itself (GET /browser-test.html never reaches
//   rcomet), so the page, /ws and /sse share one origin whatever CORS policy the server has. It
//   is a real loopback response on purpose: Chromium's local-network checks refuse a page whose
//   document came from nowhere local (about:blank, an intercepted response) connecting to
//   127.0.0.1.
//
// Scenarios (one channel each):
// - ws:  the page's WebSocket client; first the page closes its socket itself, then the proxy
//        resets the connection. Each time the page reopens with seq=<last+1>&epoch=<epoch>.
// - sse: an EventSource on /sse?id=1; the proxy ends the connection (FIN), then resets it
//        (RST). EventSource reconnects on its own after the server's retry: hint and sends
//        Last-Event-ID.
// Pushes go to the admin port at a steady pace the whole time. At the end a last message is
// pushed and, once it arrived, the page's list must be exactly the pushed list: every seq once,
// in order, with the contents pushed, no reset, and (for SSE) each id <epoch>:<seq>.
//
// Every wait has a timeout; the whole run is bounded by RUN_TIMEOUT_MS. Prints one "ok" line per
// scenario and exits 0, or prints why and exits 1.

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import {
  Proxy, Pusher, STEP_TIMEOUT_MS, assertEq, assertList, fail, header, push, query, startServer, until,
} from "./lib.mjs";

const RUN_TIMEOUT_MS = 50_000;
const WS_RETRY_MS = 200;
// Ring size for the run: far more than can be pushed while a client is away (SSE waits the
// server's 2 s retry hint), so no resume falls off the ring.
const RING = 2000;
const PAGE_PATH = "/browser-test.html";

const { values: opts } = parseArgs({
  options: {
    server: { type: "string" },
    engine: { type: "string", default: "epoll" },
    chromium: { type: "string", default: process.env.RCOMET_CHROMIUM || "/usr/bin/chromium" },
  },
});

/** What the page's client `cname` has seen (a plain copy). */
function clientState(page, cname) {
  return page.evaluate((c) => {
    const st = window.clients[c];
    return JSON.parse(JSON.stringify({ ...st, drop: undefined, stop: undefined }));
  }, cname);
}

async function waitForData(page, cname, n, what) {
  await until(`${cname}: ${what} (${n} messages)`, async () =>
    page.evaluate(([c, k]) => window.clients[c].data.length >= k, [cname, n]));
}

/** The seq a reconnect asks to resume from, read from its request head. */
function resumeSeq(kind, head, epoch) {
  if (kind === "ws") {
    const q = query(head);
    assertEq(q.get("epoch"), String(epoch), "ws reconnect epoch");
    return Number(q.get("seq"));
  }
  const id = header(head, "last-event-id");
  if (id === null) fail(`sse reconnect without Last-Event-ID: ${head}`);
  const [e, s] = id.split(":");
  assertEq(e, String(epoch), "sse Last-Event-ID epoch");
  if (query(head).has("last_event_id")) fail("EventSource put the id in the query; expected the header");
  return Number(s) + 1;
}

/**
 * One scenario: subscribe from the page, push steadily, break the connection once per entry of
 * `breaks` ("page-close", "fin" or "reset"), let each reconnect through only after more messages
 * were pushed, then check the page's list.
 */
async function scenario(kind, breaks, { page, proxy, admin, base }) {
  const cname = `${kind}-resume`;
  await page.evaluate(
    ([k, b, c, retry]) => {
      window.clients[c] = k === "ws" ? window.wsClient(b, c, retry) : window.sseClient(b, c);
    },
    [kind, base, cname, WS_RETRY_MS],
  );
  let st0 = null;
  const first = await until(`${cname}: its opening next_seq marker`, async () => {
    st0 = await clientState(page, cname);
    return st0.markers.length > 0 ? st0 : null;
  }).catch((e) => fail(`${e.message}; the client saw ${JSON.stringify(st0)}; proxy: ${JSON.stringify(proxy.conns.map((c) => c.head))}`));
  const epoch = first.epoch;
  assertEq(first.markers[0].type, "next_seq", `${cname} opening marker`);
  assertEq(proxy.connsFor(cname).length, 1, `${cname} connections at start`);
  const firstHead = proxy.connsFor(cname)[0].head;
  if (header(firstHead, "last-event-id") !== null) fail(`${cname}: a fresh EventSource sent Last-Event-ID`);

  const pusher = new Pusher(admin, cname, `${kind}-`);
  pusher.start();
  const resumes = [];
  let seen = 0;
  for (const how of breaks) {
    seen += 10;
    await waitForData(page, cname, seen, `live messages before "${how}"`);
    const before = proxy.connsFor(cname).length;
    const current = proxy.connsFor(cname)[before - 1];
    proxy.holding = true;
    if (how === "page-close") {
      await page.evaluate((c) => window.clients[c].drop(), cname);
    } else {
      proxy.cut(current, how);
    }
    const next = await until(`${cname}: the browser reconnecting after "${how}"`, async () =>
      proxy.connsFor(cname)[before]);
    proxy.holding = false;
    const from = resumeSeq(kind, next.head, epoch);
    // Let it through only once messages from `from` on are stored: they can only reach the page
    // by the server's replay of its ring.
    await until(`${cname}: pushes while the client is away`, async () => pusher.acked >= from + 2);
    const acked = pusher.acked;
    proxy.connect(next);
    resumes.push({ how, from, replayed: acked - from + 1 });
    seen = acked;
  }
  await waitForData(page, cname, seen + 10, "live messages after the last reconnect");
  await pusher.stop();
  await push(admin, cname, "end");
  const want = [...pusher.contents, "end"];
  // A timeout here is reported by the checks below, which say what is missing.
  await waitForData(page, cname, want.length, "every message up to the last push").catch(() => {});

  const st = await clientState(page, cname);
  await page.evaluate((c) => window.clients[c].stop(), cname);
  assertList(st.data.map((m) => m.content), want, `${cname} contents in arrival order`);
  assertList(st.data.map((m) => m.seq), want.map((_, i) => i + 1), `${cname} seqs in arrival order`);
  if (kind === "sse") {
    assertList(st.data.map((m) => m.id), want.map((_, i) => `${epoch}:${i + 1}`), `${cname} event ids`);
  }
  assertEq(st.resets, 0, `${cname} reset markers`);
  assertEq(st.other, [], `${cname} unexpected messages`);
  assertEq(st.markers.map((m) => [m.type, m.epoch]), [["next_seq", epoch]], `${cname} markers`);
  assertEq(st.opens, breaks.length + 1, `${cname} connections opened by the browser`);
  assertEq(proxy.connsFor(cname).length, breaks.length + 1, `${cname} connections through the proxy`);
  if (kind === "ws") {
    assertEq(st.closes.slice(0, breaks.length), breaks.map((b) => (b === "page-close" ? 1000 : 1006)), "ws close codes");
  }
  const how = resumes.map((r) => `${r.how} resumed at seq ${r.from} with ${r.replayed} replayed`).join("; ");
  console.log(`${kind}: ok: ${want.length} messages exactly once, in order, over ${st.opens} connections (${how})`);
}

async function main() {
  if (!opts.server) fail("usage: node resume.mjs --server PATH/TO/rcomet [--engine E] [--chromium PATH]");
  const resources = [];
  const cleanup = () => {
    for (const r of resources.reverse()) {
      try {
        r();
      } catch {
        // best effort
      }
    }
  };
  process.on("exit", cleanup);
  for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(1));
  const timer = setTimeout(() => {
    console.error(`browser test: did not finish within ${RUN_TIMEOUT_MS} ms`);
    process.exit(1);
  }, RUN_TIMEOUT_MS);

  const server = await startServer(opts.server, opts.engine, { ring: RING });
  resources.push(() => server.child.kill("SIGKILL"));
  const frontPort = Number(server.front.split(":").pop());
  const html = readFileSync(new URL("./page.html", import.meta.url), "utf8");
  const proxy = new Proxy(frontPort, { [PAGE_PATH]: { type: "text/html; charset=utf-8", body: html } });
  const port = await proxy.listen();
  resources.push(() => proxy.close());

  const browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    // Root (as CI runs) has no user-namespace sandbox.
    args: ["--no-sandbox"],
    timeout: 20_000,
  });
  resources.push(() => browser.close());
  const page = await browser.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

  // The proxy serves the page itself, so the page, /ws and /sse share one origin.
  const origin = `http://127.0.0.1:${port}`;
  await page.goto(`${origin}${PAGE_PATH}`);
  const requests = proxy.conns.filter((c) => c.head !== null && !c.pagesServed).length;
  if (requests !== 0) fail(`loading the page sent ${requests} requests to the server`);

  const env = { page, proxy, admin: server.admin, base: origin };
  await scenario("ws", ["page-close", "reset"], { ...env, base: origin.replace("http:", "ws:") });
  await scenario("sse", ["fin", "reset"], env);
  if (problems.length) fail(problems.join("\n"));
  clearTimeout(timer);
  console.log(`browser (${opts.engine}, ${browser.version()}): ok`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`browser test failed: ${e.stack || e}`);
    process.exit(1);
  },
);
