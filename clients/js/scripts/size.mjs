// Prints the client's size as a browser downloads it at best: src/index.js
// and its imports bundled and minified by esbuild, then gzipped (level 9).
//
// Usage: npm run size        (or: node scripts/size.mjs --json)
import { build } from "esbuild";
import { gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

export async function measure() {
  const entry = fileURLToPath(new URL("../src/index.js", import.meta.url));
  const out = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", write: false, target: "es2022" });
  const code = out.outputFiles[0].contents;
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const m = await measure();
  console.log(process.argv.includes("--json") ? JSON.stringify(m) : `${m.minified} bytes minified, ${m.gzipped} bytes minified and gzipped`);
}
