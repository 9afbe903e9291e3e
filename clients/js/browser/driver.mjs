// Drives headless Chromium for the client's browser tests (browser_test.go):
// it reads commands as JSON lines on stdin and prints what the test pages
// report as JSON lines on stdout.
//
// Usage: node driver.mjs BASE_URL JWT_SECRET
//
// Commands ({seq, op, ...}; each is answered with {kind:"done", seq} or
// {kind:"fail", seq, message}):
//   {op:"open", ctx, tab, query}   a new tab in browser context ctx (contexts
//                                  share nothing: storage, locks, channels)
//                                  on the test page, BASE_URL/__test/page.html?tab=TAB&QUERY
//   {op:"close", tab}              closes the tab (its page unloads)
//   {op:"reload", tab}             reloads it
//   {op:"goto", tab, url}          navigates it ("" is the test page again)
//   {op:"closectx", ctx}
//   {op:"log", tab}                answers {kind:"done", seq, value} with what the
//                                  page kept of its events (JSON, over reloads)
// The page is served by a route on the gateway's origin, so it imports
// /client/index.js from the gateway itself. CHROMIUM overrides the browser.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { createHmac } from "node:crypto";

const [base, secret] = process.argv.slice(2);
const page = readFileSync(new URL("./page.html", import.meta.url), "utf8");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
    "--no-first-run", "--disable-component-update", "--disable-sync"],
});

const b64u = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
// jwt mints an HS256 token granting subscribe on grant for ttl seconds; a
// bad one is signed with another secret.
function jwt({ ttl, grant, bad }) {
  const body = `${b64u({ alg: "HS256", typ: "JWT" })}.${b64u({ sub: "browser-test", exp: Math.floor(Date.now() / 1000) + ttl, sse: { subscribe: grant } })}`;
  return `${body}.${createHmac("sha256", bad ? secret + "-not" : secret).update(body).digest("base64url")}`;
}

const contexts = new Map(), tabs = new Map(), urls = new Map();
async function context(name) {
  if (!contexts.has(name)) {
    const c = await browser.newContext();
    await c.route(base + "/__test/**", (route) => route.fulfill({ contentType: "text/html; charset=utf-8", body: page }));
    await c.exposeFunction("__report", (o) => out(o));
    await c.exposeFunction("__token", (o) => jwt(o));
    contexts.set(name, c);
  }
  return contexts.get(name);
}

async function handle(cmd) {
  const p = tabs.get(cmd.tab);
  switch (cmd.op) {
    case "open": {
      const pg = await (await context(cmd.ctx)).newPage();
      pg.on("pageerror", (e) => out({ tab: cmd.tab, kind: "pageerror", message: String(e) }));
      // The browser logs refused requests (401, 403) itself: those are expected.
      pg.on("console", (m) => m.type() === "error" && !m.text().startsWith("Failed to load resource") && out({ tab: cmd.tab, kind: "console", message: m.text() }));
      const url = `${base}/__test/page.html?tab=${encodeURIComponent(cmd.tab)}&${cmd.query}`;
      tabs.set(cmd.tab, pg);
      urls.set(cmd.tab, url);
      await pg.goto(url);
      return;
    }
    case "close":
      tabs.delete(cmd.tab);
      return p.close();
    case "reload":
      return p.reload();
    case "goto":
      return p.goto(cmd.url || urls.get(cmd.tab));
    case "log":
      return p.evaluate(() => sessionStorage.getItem("__test_log") || "[]");
    case "closectx":
      await contexts.get(cmd.ctx)?.close();
      contexts.delete(cmd.ctx);
      return;
  }
  throw new Error("unknown op " + cmd.op);
}

createInterface({ input: process.stdin }).on("line", async (line) => {
  const cmd = JSON.parse(line);
  try {
    const value = await handle(cmd);
    out({ kind: "done", seq: cmd.seq, value: typeof value === "string" ? value : undefined });
  } catch (e) {
    out({ kind: "fail", seq: cmd.seq, message: String(e) });
  }
});
const stop = async () => {
  await browser.close();
  process.exit(0);
};
process.stdin.on("end", stop);
process.on("SIGTERM", stop);
out({ kind: "started" });
