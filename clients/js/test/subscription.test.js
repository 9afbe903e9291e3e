// One tab with its own connection (Node has no Web Locks: the client falls
// back to a connection per subscription), against the gateway in memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, Subscription, CONNECTING, OPEN, CLOSED } from "../src/index.js";
import { FakeGateway, until, memoryStorage } from "./fakegw.js";

const URL_ = "http://gw.test/events";

// record collects a subscription's events of the given types.
function record(sub, types = ["message", "status", "history-lost", "open", "error"]) {
  const got = [];
  for (const t of types) {
    sub.addEventListener(t, (e) => got.push({ type: t, data: e.data, id: e.lastEventId, topic: e.topic, topics: e.topics, reason: e.reason, status: e.status, message: e.message, fatal: e.fatal, rs: sub.readyState }));
  }
  return got;
}
const datas = (got) => got.filter((e) => e.type === "message" || e.type === "status").map((e) => e.data);

test("without Web Locks it streams alone, and hands over events as published", async (t) => {
  const gw = new FakeGateway();
  const storage = memoryStorage();
  const sub = connect(URL_, { topics: ["b", "a", "a"], fetch: gw.fetch, storage });
  t.after(() => sub.close());
  assert.ok(sub instanceof Subscription);
  assert.equal(sub.role, "solo");
  assert.deepEqual(sub.topics, ["a", "b"]);
  assert.equal(sub.readyState, CONNECTING);
  const got = record(sub);
  await until(() => gw.streams.size === 1 && sub.lastEventId, "the stream and its checkpoint");
  assert.equal(sub.readyState, OPEN);
  assert.deepEqual(gw.requests[0].url.searchParams.getAll("topic"), ["a", "b"]);
  assert.equal(gw.requests[0].url.searchParams.get("lastEventId"), null);
  assert.equal(gw.requests[0].headers.Authorization, undefined);
  gw.publish("a", "one");
  gw.publish("b", "two", "status");
  await until(() => datas(got).length === 2);
  assert.deepEqual(got.map((e) => [e.type, e.data, e.topic]), [["open", undefined, undefined], ["message", "one", "a"], ["status", "two", "b"]]);
  assert.equal(got[2].id, sub.lastEventId);
  assert.equal([...storage.map.values()][0], sub.lastEventId, "the cursor is stored");
  let handled = 0;
  sub.onmessage = () => handled++;
  gw.publish("a", "three");
  await until(() => handled === 1, "onmessage");
  sub.onmessage = null;
  gw.publish("a", "four");
  await until(() => datas(got).length === 4);
  assert.equal(handled, 1);
});

test("a stream the server ends is resumed from the cursor, with nothing lost or repeated", async (t) => {
  const gw = new FakeGateway();
  const sub = connect(URL_ + "?topic=x", { fetch: gw.fetch, storage: null });
  t.after(() => sub.close());
  const got = record(sub);
  await until(() => gw.streams.size === 1 && sub.lastEventId);
  for (let i = 0; i < 5; i++) gw.publish("x", "e" + i);
  await until(() => datas(got).length === 5);
  const cursor = sub.lastEventId;
  gw.endAll();
  for (let i = 5; i < 10; i++) gw.publish("x", "e" + i); // while it reconnects
  await until(() => datas(got).length === 10);
  assert.deepEqual(datas(got), Array.from({ length: 10 }, (_, i) => "e" + i));
  assert.equal(gw.requests[1].url.searchParams.get("lastEventId"), cursor);
  const err = got.find((e) => e.type === "error");
  assert.equal(err.rs, CONNECTING, "an error event, then it reconnects");
  assert.equal(err.fatal, undefined);
  assert.equal(got.filter((e) => e.type === "open").length, 2);
  assert.ok(got.every((e) => e.type !== "message" || e.topic === "x"));
});

test("the stored cursor is where a new page starts", async (t) => {
  const gw = new FakeGateway();
  for (let i = 0; i < 3; i++) gw.publish("x", "old" + i);
  const storage = memoryStorage();
  // What a first page stored: the cursor of old0.
  const key = ["ssegateway", "events", URL_, "x"].join("\n");
  storage.setItem(key, "1000-0");
  const sub = connect(URL_, { topics: ["x"], fetch: gw.fetch, storage });
  t.after(() => sub.close());
  const got = record(sub);
  await until(() => datas(got).length === 2);
  assert.deepEqual(datas(got), ["old1", "old2"]);
  assert.equal(gw.requests[0].url.searchParams.get("lastEventId"), "1000-0");
});

test("history-lost reaches the listener with its topics and reason", async (t) => {
  const frames = 'retry: 10\nid: 5-0\nevent: history-lost\ndata: {"topics":["x"],"reason":"trimmed"}\n\n';
  const sub = connect(URL_, { topics: ["x"], storage: null, fetch: async () => new Response(frames, { headers: { "content-type": "text/event-stream" } }) });
  t.after(() => sub.close());
  const got = record(sub);
  await until(() => got.some((e) => e.type === "history-lost"));
  const hl = got.find((e) => e.type === "history-lost");
  assert.deepEqual(hl.topics, ["x"]);
  assert.equal(hl.reason, "trimmed");
  assert.equal(hl.id, "5-0");
});

const b64u = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (exp, n) => `${b64u({ alg: "HS256" })}.${b64u({ exp, n })}.sig`;

test("a 401 gets one retry with a fresh token, then an error event with the status; the subscription stops", async (t) => {
  const gw = new FakeGateway();
  gw.respond = () => new Response('{"error":"invalid token: signature"}', { status: 401, headers: { "content-type": "application/json" } });
  let calls = 0;
  const sub = connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, token: async () => "tok" + ++calls });
  t.after(() => sub.close());
  const got = record(sub);
  await until(() => got.some((e) => e.type === "error"));
  assert.equal(calls, 2);
  assert.deepEqual(gw.requests.map((r) => r.headers.Authorization), ["Bearer tok1", "Bearer tok2"]);
  const err = got.find((e) => e.type === "error");
  assert.deepEqual([err.status, err.message, err.fatal, err.rs], [401, "invalid token: signature", true, CLOSED]);
  assert.equal(sub.readyState, CLOSED);
});

test("403 and 400 stop at once; 503 and network failures are retried", async (t) => {
  for (const status of [403, 400]) {
    const gw = new FakeGateway();
    gw.respond = () => new Response(`{"error":"no ${status}"}`, { status });
    const sub = connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, token: "t" });
    t.after(() => sub.close());
    const got = record(sub);
    await until(() => sub.readyState === CLOSED);
    assert.equal(gw.requests.length, 1);
    assert.deepEqual(got.map((e) => [e.type, e.status, e.fatal]), [["error", status, true]]);
  }
  const gw = new FakeGateway();
  let n = 0;
  gw.respond = () => {
    n++;
    if (n === 1) return new Response("down", { status: 503 });
    if (n === 2) throw new TypeError("Failed to fetch");
  };
  const sub = connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, retry: 5 });
  t.after(() => sub.close());
  const got = record(sub);
  await until(() => sub.readyState === OPEN);
  assert.deepEqual(got.map((e) => [e.type, e.status, e.message, e.fatal]), [
    ["error", 503, "down", undefined],
    ["error", undefined, "Failed to fetch", undefined],
    ["open", undefined, undefined, undefined],
  ]);
});

test("where the token goes: header, query parameter, or cookie", async (t) => {
  const gw = new FakeGateway();
  const subs = [
    connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, token: "h" }),
    connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, token: () => "q", tokenIn: "query", tokenParam: "access_token" }),
    connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, token: async () => "c", tokenIn: "cookie" }),
    connect("http://hub.test/.well-known/mercure", { topics: ["https://ex.com/b/1"], fetch: gw.fetch, storage: null, token: "m", tokenIn: "query", lastEventId: "urn:uuid:1" }),
  ];
  t.after(() => subs.forEach((s) => s.close()));
  await until(() => gw.requests.length === 4);
  const [h, q, c, m] = [0, 1, 2, 3].map((i) => gw.requests.find((r) => r.url.href.includes(["", "access_token", "", "mercure"][i]) && (i !== 0 || r.headers.Authorization) && (i !== 2 || r.credentials === "include")));
  assert.equal(h.headers.Authorization, "Bearer h");
  assert.equal(h.credentials, "same-origin");
  assert.equal(q.url.searchParams.get("access_token"), "q");
  assert.equal(q.headers.Authorization, undefined);
  assert.equal(c.credentials, "include");
  assert.equal(c.headers.Authorization, undefined);
  assert.equal(c.url.search, "?topic=x");
  assert.equal(m.url.searchParams.get("authorization"), "m");
  assert.equal(m.url.searchParams.get("lastEventID"), "urn:uuid:1");
});

test("a token is refreshed before it expires and the stream resumes in place", async (t) => {
  const gw = new FakeGateway();
  const tokens = [];
  const token = async () => {
    // Two seconds to live: the client refreshes at half of it.
    const tok = jwt(Math.floor(Date.now() / 1000) + 2, tokens.length);
    tokens.push(tok);
    return tok;
  };
  const sub = connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null, token });
  t.after(() => sub.close());
  const got = record(sub);
  await until(() => gw.streams.size === 1 && sub.lastEventId);
  let i = 0;
  while (gw.requests.length < 2) {
    gw.publish("x", "e" + i++);
    await new Promise((r) => setTimeout(r, 20));
  }
  await until(() => gw.streams.size === 1);
  for (let j = 0; j < 3; j++) gw.publish("x", "e" + i++);
  await until(() => datas(got).length === i);
  assert.deepEqual(datas(got), Array.from({ length: i }, (_, k) => "e" + k));
  assert.equal(tokens.length, 2);
  assert.equal(gw.requests[1].headers.Authorization, "Bearer " + tokens[1]);
  assert.ok(gw.requests[1].url.searchParams.get("lastEventId"), "resumed from the cursor");
  assert.ok(!got.some((e) => e.type === "error"), "a refresh is not an error");
});

test("close stops the stream and every timer", async () => {
  const gw = new FakeGateway();
  const sub = connect(URL_, { topics: ["x"], fetch: gw.fetch, storage: null });
  await until(() => gw.streams.size === 1);
  sub.close();
  assert.equal(sub.readyState, CLOSED);
  await until(() => gw.streams.size === 0, "the stream aborted");
  gw.publish("x", "after");
  // Node's test runner fails a test that leaves timers or handles behind.
});
