// The package as published: no runtime dependencies, modules a browser can
// import straight from src/, and small.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { measure } from "../scripts/size.mjs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url)));

test("no runtime dependencies; exports name the browser's entry point and its types", () => {
  assert.equal(pkg.name, "@ssegateway/client");
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependencies, undefined);
  assert.deepEqual(pkg.exports["."], { types: "./src/index.d.ts", default: "./src/index.js" });
  assert.equal(pkg.type, "module");
});

test("the modules import only each other, by relative path with the extension", () => {
  const dir = new URL("../src/", import.meta.url);
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".js"))) {
    for (const m of readFileSync(new URL(f, dir), "utf8").matchAll(/^import .* from "([^"]+)";$/gm)) {
      assert.match(m[1], /^\.\/[a-z]+\.js$/, `${f} imports ${m[1]}`);
      assert.ok(readdirSync(dir).includes(m[1].slice(2)), `${f} imports ${m[1]}, which is not in src/`);
    }
  }
});

test("small: under 5 KiB minified and gzipped", async () => {
  const { gzipped } = await measure();
  assert.ok(gzipped < 5 * 1024, `${gzipped} bytes`);
});
