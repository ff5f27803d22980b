// Builds dist/ with esbuild: rcomet.mjs (ES module) and rcomet.umd.js (UMD: CommonJS, AMD, or
// the global `RComet` from a plain <script>), both minified, internal `_names` shortened.
// Prints each file's size minified and gzipped. Usage: node build.mjs
import { build } from "esbuild";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const here = new URL(".", import.meta.url);
const common = {
  entryPoints: [new URL("src/rcomet.js", here).pathname],
  bundle: true,
  minify: true,
  mangleProps: /^_/,
  target: "es2020",
  write: false,
  legalComments: "none",
};

mkdirSync(new URL("dist", here), { recursive: true });
/** Writes a file whole: a temporary file renamed over it (runs in parallel never see half). */
function put(name, text) {
  const tmp = new URL(`dist/.${name}.${process.pid}`, here);
  writeFileSync(tmp, text);
  renameSync(tmp, new URL(`dist/${name}`, here));
}

// The package is "type": "module"; the UMD file is CommonJS to node's require.
put("package.json", '{ "type": "commonjs" }\n');

const esm = await build({ ...common, format: "esm" });
const iife = await build({ ...common, format: "iife", globalName: "__rcomet" });
const umd =
  "(function(r,f){typeof exports=='object'&&typeof module<'u'?module.exports=f():" +
  "typeof define=='function'&&define.amd?define(f):r.RComet=f()})(typeof self<'u'?self:this,function(){" +
  iife.outputFiles[0].text +
  "return Object.assign(__rcomet.default,__rcomet)});\n";

const out = { "rcomet.mjs": esm.outputFiles[0].text, "rcomet.umd.js": umd };
for (const [name, text] of Object.entries(out)) {
  put(name, text);
  const gz = gzipSync(Buffer.from(text), { level: 9 }).length;
  console.log(`dist/${name}: ${text.length} B minified, ${gz} B gzipped`);
}
