// What the browser tests share (resume.mjs, client.mjs): waits and list checks, starting the real
// rcomet binary (port 0, or given ports for a restart), a TCP proxy in front of its front port
// that serves the test pages itself, can cut connections (FIN or RST), hold new ones, and refuse
// requests (a WebSocket upgrade, a path), and pushing on the admin port.
import { spawn } from "node:child_process";
import net from "node:net";
import { setTimeout as delay } from "node:timers/promises";

export const STEP_TIMEOUT_MS = 15_000;
const PUSH_INTERVAL_MS = 15;

export function fail(message) {
  throw new Error(message);
}

/** Polls `cond` every 10 ms until it returns something truthy; fails after `ms`. */
export async function until(what, cond, ms = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) fail(`timed out after ${ms} ms waiting for ${what}`);
    await delay(10);
  }
}

export function assertEq(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) fail(`${what}: got ${g}, want ${w}`);
}

/** Fails unless `got` is exactly `want`, saying where they part: missing, doubled, reordered. */
export function assertList(got, want, what) {
  if (JSON.stringify(got) === JSON.stringify(want)) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  const count = new Map();
  for (const g of got) count.set(g, (count.get(g) ?? 0) + 1);
  const missing = want.filter((w) => !count.has(w));
  const twice = [...count].filter(([, n]) => n > 1).map(([g]) => g);
  const few = (xs) => JSON.stringify(xs.slice(0, 10)) + (xs.length > 10 ? ` and ${xs.length - 10} more` : "");
  fail(
    `${what}: ${got.length} received, ${want.length} pushed; first difference at #${i + 1} ` +
      `(got ${JSON.stringify(got[i])}, want ${JSON.stringify(want[i])}); missing ${few(missing)}; ` +
      `more than once ${few(twice)}`,
  );
}

/**
 * Starts rcomet (on port 0 for both ports unless `admin`/`front` name them: a restart on the same
 * ports) and reads both addresses from its ready line. `ring`: messages kept per channel.
 */
export function startServer(bin, engine, { ring = 2000, admin = "127.0.0.1:0", front = "127.0.0.1:0" } = {}) {
  const args = [
    "--admin-listen", admin,
    "--front-listen", front,
    "--threads", "2",
    "--engine", engine,
    "--channel-buffer-size", String(ring),
    "--log-level", "warn",
    "--log-output", "stderr",
  ];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("rcomet printed no ready line within 20 s")), 20_000);
    let out = "";
    const onData = (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith("rcomet ready"));
      if (!line) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      child.stdout.resume();
      const field = (name) => line.split(/\s+/).find((w) => w.startsWith(name))?.slice(name.length);
      if (field("engine=") !== engine) reject(new Error(`rcomet runs on another engine: ${line}`));
      resolve({ child, admin: field("admin="), front: field("front=") });
    };
    child.stdout.on("data", onData);
    child.on("error", (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
    child.on("exit", (code, signal) => reject(new Error(`rcomet exited (${code ?? signal}) before its ready line`)));
  });
}

/** Stops a server from `startServer`: SIGTERM (a graceful stop), SIGKILL after `ms`. */
export async function stopServer(server, ms = 10_000) {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), ms);
  await exited;
  clearTimeout(timer);
}

/**
 * A TCP proxy to rcomet's front port that records each connection's request head. It answers
 * the paths of `pages` (path → {type, body}) itself, so the test pages share the origin of /ws,
 * /sse and /poll; `refuse(head)` true answers a request 403 instead of passing it on.
 */
export class Proxy {
  constructor(upstreamPort, pages) {
    this.upstreamPort = upstreamPort;
    this.pages = pages;
    this.refuse = null;
    this.refused = 0;
    this.conns = [];
    this.holding = false;
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen() {
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", resolve);
    });
    return this.server.address().port;
  }

  accept(client) {
    // The upstream side opens once the request head is in (browsers also open idle sockets
    // ahead of need), unless the proxy is holding new requests then.
    const conn = { client, upstream: null, head: null, held: false, pending: [], closed: false };
    this.conns.push(conn);
    client.setNoDelay(true);
    let sniffed = Buffer.alloc(0);
    client.on("data", (d) => {
      if (conn.head === null) {
        sniffed = Buffer.concat([sniffed, d]);
        const end = sniffed.indexOf("\r\n\r\n");
        if (end >= 0 || sniffed.length > 16384) {
          conn.head = sniffed.subarray(0, end >= 0 ? end : sniffed.length).toString("latin1");
          const [method, path] = requestLine(conn.head).split(" ");
          if (method === "GET" && Object.hasOwn(this.pages, path)) {
            this.servePage(conn, this.pages[path]);
            return;
          }
          if (this.refuse?.(conn.head)) {
            this.refused++;
            conn.client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            return;
          }
          conn.held = this.holding;
          conn.pending.push(sniffed);
          if (!conn.held) this.connect(conn);
          return;
        }
      }
      if (conn.head === null) return;
      if (conn.upstream) conn.upstream.write(d);
      else conn.pending.push(d);
    });
    // A clean end is passed on as a clean end (what was written is flushed first, so a close
    // frame the server sent just before its FIN reaches the browser); errors tear down both sides.
    const close = () => {
      conn.closed = true;
      client.destroy();
      conn.upstream?.destroy();
    };
    client.on("error", close);
    client.on("end", () => (conn.upstream ? conn.upstream.end() : close()));
    client.on("close", () => {
      conn.closed = true;
      conn.upstream?.destroy();
    });
    conn.close = close;
  }

  /** Answers a page's own request itself (it never reaches rcomet) and closes. */
  servePage(conn, { type, body }) {
    const bytes = Buffer.from(body);
    conn.client.write(
      `HTTP/1.1 200 OK\r\nContent-Type: ${type}\r\nContent-Length: ${bytes.length}\r\n` +
        `Cache-Control: no-store\r\nConnection: close\r\n\r\n`,
    );
    conn.client.end(bytes);
    conn.pagesServed = true;
  }

  /** Opens the upstream side of a connection and sends what the client sent so far. */
  connect(conn) {
    conn.held = false;
    if (conn.closed) return;
    const up = net.connect(this.upstreamPort, "127.0.0.1");
    conn.upstream = up;
    up.setNoDelay(true);
    for (const d of conn.pending) up.write(d);
    conn.pending = [];
    up.on("data", (d) => conn.client.write(d));
    up.on("error", conn.close);
    up.on("end", () => conn.client.end());
    up.on("close", () => conn.client.end());
  }

  /** Connections whose request line names `cname`, oldest first. */
  connsFor(cname) {
    return this.conns.filter((c) => c.head !== null && query(c.head).get("cname") === cname);
  }

  /** Cuts a connection from outside: "fin" closes both sides, "reset" sends RSTs. */
  cut(conn, how) {
    for (const s of [conn.client, conn.upstream]) {
      if (!s) continue;
      if (how === "reset") s.resetAndDestroy();
      else s.destroy();
    }
  }

  close() {
    for (const c of this.conns) c.close?.();
    this.server.close();
  }
}

export function requestLine(head) {
  return head.split("\r\n")[0];
}

export function header(head, name) {
  for (const line of head.split("\r\n").slice(1)) {
    const i = line.indexOf(":");
    if (i > 0 && line.slice(0, i).trim().toLowerCase() === name) return line.slice(i + 1).trim();
  }
  return null;
}

export function query(head) {
  const target = requestLine(head).split(" ")[1] ?? "";
  return new URL(target, "http://x").searchParams;
}

/** One admin /push; fails on anything but 200. */
export async function push(admin, cname, content) {
  const url = `http://${admin}/push?cname=${encodeURIComponent(cname)}&content=${encodeURIComponent(content)}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const body = await res.text();
  if (res.status !== 200) fail(`push ${content}: HTTP ${res.status} ${body}`);
}

/** Pushes `<prefix><n>` for n = 1, 2, ... at a steady pace until stopped. */
export class Pusher {
  constructor(admin, cname, prefix) {
    Object.assign(this, { admin, cname, prefix, acked: 0, stopped: false, contents: [] });
  }

  start() {
    this.done = (async () => {
      while (!this.stopped) {
        const content = `${this.prefix}${this.acked + 1}`;
        await push(this.admin, this.cname, content);
        this.contents.push(content);
        this.acked++;
        await delay(PUSH_INTERVAL_MS);
      }
    })();
    // A failed push fails the run at the next await on `done`; keep it from being unhandled.
    this.done.catch(() => {});
  }

  async stop() {
    this.stopped = true;
    await this.done;
  }
}

