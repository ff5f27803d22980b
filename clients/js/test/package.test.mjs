// The package as it ships: the build (esbuild), its size (at most 5 KB minified and gzipped, ES
// module and UMD alike), what `npm pack` puts in it, and the built files working when loaded the
// ways users load them (import, require, a global from a plain script).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";

const dir = new URL("..", import.meta.url).pathname;
const LIMIT = 5 * 1024;

test("the build writes both bundles, each at most 5 KB minified and gzipped", () => {
  const out = execFileSync(process.execPath, ["build.mjs"], { cwd: dir, encoding: "utf8", timeout: 60_000 });
  for (const name of ["rcomet.mjs", "rcomet.umd.js"]) {
    const text = readFileSync(`${dir}dist/${name}`);
    const gz = gzipSync(text, { level: 9 }).length;
    assert.ok(gz <= LIMIT, `dist/${name}: ${gz} B gzipped, over ${LIMIT} B`);
    assert.ok(!text.toString().includes("\n//"), `dist/${name} is minified`);
    assert.match(out, new RegExp(`dist/${name.replace(".", "\\.")}: \\d+ B minified, ${gz} B gzipped`));
  }
});

test("npm pack ships the bundles, the sources and the types", () => {
  const json = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: dir, encoding: "utf8", timeout: 60_000 });
  const files = JSON.parse(json)[0].files.map((f) => f.path).sort();
  for (const f of ["dist/rcomet.mjs", "dist/rcomet.umd.js", "dist/package.json", "index.d.ts", "package.json", "src/core.js", "src/rcomet.js"]) {
    assert.ok(files.includes(f), `${f} missing from ${files}`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("node_modules/")), `${files}`);
  const pkg = JSON.parse(readFileSync(`${dir}package.json`, "utf8"));
  assert.equal(pkg.exports["."].import, "./dist/rcomet.mjs");
  assert.equal(pkg.exports["."].types, "./index.d.ts");
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), [], "no runtime dependencies");
  assert.match(pkg.devDependencies.esbuild, /^\d+\.\d+\.\d+$/, "esbuild pinned");
});

/** A scripted WebSocket that records the URLs it is opened with. */
function fakeSockets() {
  const urls = [];
  class WebSocket {
    constructor(url) {
      urls.push(url);
    }
    close() {}
  }
  return { urls, WebSocket };
}

test("the built bundles load by import, require and as a script's global, and connect", async () => {
  const esm = await import(`${dir}dist/rcomet.mjs`);
  assert.equal(typeof esm.RComet, "function");
  assert.equal(esm.default, esm.RComet);
  const cjs = createRequire(import.meta.url)(`${dir}dist/rcomet.umd.js`);
  assert.equal(typeof cjs, "function");
  assert.equal(cjs.RComet, cjs);
  assert.equal(typeof cjs.backoff, "function");

  // A plain <script>: the global RComet, with internal names shortened by the build and
  // still working together.
  const ws = fakeSockets();
  const window = { WebSocket: ws.WebSocket, setTimeout, clearTimeout, Math, JSON, Promise, Map, Set, Date };
  window.self = window;
  runInNewContext(readFileSync(`${dir}dist/rcomet.umd.js`, "utf8"), window);
  const c = new window.RComet({ url: "https://push.test", channel: "room", share: false, seq: 5, epoch: 2 });
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(ws.urls, ["wss://push.test/ws?cname=room&seq=5&epoch=2"]);
  assert.equal(c.state, "connecting");
  c.close();
  assert.equal(c.state, "closed");
});
