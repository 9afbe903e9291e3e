// Tabs sharing one connection, in one process: a fake Web Locks manager and
// Node's own BroadcastChannel (which delivers between the channels of one
// process as between tabs), against the gateway in memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeGateway, FakeLocks, until, memoryStorage } from "./fakegw.js";

globalThis.navigator = { locks: new FakeLocks() };
const { connect } = await import("../src/index.js");
const { cursorTag, encode } = await import("../src/cursor.js");

let n = 0;
// tabs opens k subscriptions to the same topics, each with its own storage
// (sessionStorage is per tab), and records what each delivers.
function tabs(t, gw, k, topics, opts = {}) {
  const url = `http://gw.test/events/${++n}`; // a subscription of its own per test
  const open = (storage = memoryStorage()) => {
    const sub = connect(url, { topics, fetch: gw.fetch, storage, ...opts });
    const tab = { sub, storage, got: [], lost: [] };
    sub.addEventListener("message", (e) => tab.got.push(e.data));
    sub.addEventListener("history-lost", (e) => tab.lost.push(e.topics));
    t.after(() => sub.close());
    return tab;
  };
  return { open, url, all: Array.from({ length: k }, () => open()) };
}

const seq = (topic, from, to) => Array.from({ length: to - from }, (_, i) => `${topic}:${from + i}`);
const holderOf = (all) => all.filter((x) => x.sub.role === "holder");
// perTopic checks that got holds exactly the events of each topic, in order.
function perTopic(got, want) {
  for (const [topic, count] of Object.entries(want)) {
    assert.deepEqual(got.filter((d) => d.startsWith(topic + ":")), seq(topic, 0, count), topic);
  }
  assert.equal(got.length, Object.values(want).reduce((a, b) => a + b));
}

test("tabs share one stream: one holds it, every tab delivers every event once, in the same order", async (t) => {
  const gw = new FakeGateway();
  const { all } = tabs(t, gw, 4, ["a", "b"]);
  await until(() => all.every((x) => x.sub.lastEventId) && holderOf(all).length === 1, "every tab placed");
  assert.equal(gw.streams.size, 1);
  assert.deepEqual(all.map((x) => x.sub.role).sort(), ["follower", "follower", "follower", "holder"]);
  for (let i = 0; i < 20; i++) gw.publish(i % 2 ? "b" : "a", `${i % 2 ? "b" : "a"}:${i >> 1}`);
  await until(() => all.every((x) => x.got.length === 20));
  for (const x of all) {
    assert.deepEqual(x.got, all[0].got);
    perTopic(x.got, { a: 10, b: 10 });
  }
  assert.equal(gw.requests.length, 1, "only the holder connected");
});

test("the holder closes mid-stream: the next tab resumes from its cursor, nothing lost or repeated", async (t) => {
  const gw = new FakeGateway();
  const { all } = tabs(t, gw, 4, ["a", "b"]);
  await until(() => all.every((x) => x.sub.lastEventId) && holderOf(all).length === 1);
  let i = 0;
  const pub = () => {
    const topic = i % 3 ? "b" : "a";
    gw.publish(topic, `${topic}:${topic === "a" ? i / 3 : i - Math.ceil(i / 3)}`);
    i++;
  };
  for (let k = 0; k < 30; k++) pub();
  const first = holderOf(all)[0];
  first.sub.close();
  const rest = all.filter((x) => x !== first);
  for (let k = 0; k < 30; k++) {
    pub();
    await new Promise((r) => setTimeout(r, 1));
  }
  await until(() => holderOf(rest).length === 1 && gw.streams.size === 1);
  for (let k = 0; k < 30; k++) pub();
  const want = { a: 30, b: 60 };
  await until(() => rest.every((x) => x.got.length === 90), () => rest.map((x) => x.got.length).join(","));
  for (const x of rest) perTopic(x.got, want);
  await until(() => gw.streams.size === 1);
});

test("a reloaded tab that follows fills its gap from the holder's recent messages", async (t) => {
  const gw = new FakeGateway();
  const { all, open } = tabs(t, gw, 2, ["a"]);
  await until(() => all.every((x) => x.sub.lastEventId) && holderOf(all).length === 1);
  for (let i = 0; i < 5; i++) gw.publish("a", "a:" + i);
  const follower = all.find((x) => x.sub.role === "follower");
  await until(() => follower.got.length === 5);
  follower.sub.close(); // unload
  for (let i = 5; i < 10; i++) gw.publish("a", "a:" + i); // during the reload
  const again = open(follower.storage); // the same tab's storage
  await until(() => again.got.length === 5, () => `${again.got}`);
  for (let i = 10; i < 12; i++) gw.publish("a", "a:" + i);
  await until(() => again.got.length === 7);
  assert.deepEqual(follower.got.concat(again.got), seq("a", 0, 12));
  assert.equal(gw.requests.length, 1, "filled by the holder, without a connection of its own");
});

test("a tab whose cursor is older than the holder's messages catches up from the gateway, then follows", async (t) => {
  const gw = new FakeGateway();
  const ids = [];
  for (let i = 0; i < 5; i++) ids.push(gw.publish("a", "a:" + i));
  const { all, open, url } = tabs(t, gw, 1, ["a", "b"]);
  await until(() => all[0].sub.lastEventId && all[0].sub.role === "holder");
  for (let i = 5; i < 10; i++) gw.publish("a", "a:" + i);
  await until(() => all[0].got.length === 5);
  // A tab that stored its place at a:1 comes back: the holder started
  // after that, so only the gateway has a:2 to a:4.
  const [ms, sq] = ids[1].split("-").map(Number);
  const from = encode(new Map([[cursorTag("a"), [ms, sq]], [cursorTag("b"), [0, 0]]]));
  const stored = memoryStorage({ [["ssegateway", "events", url, "a", "b"].join("\n")]: from });
  const late = open(stored);
  await until(() => late.got.length === 8, () => `${late.got}`);
  for (let i = 10; i < 13; i++) gw.publish("a", "a:" + i);
  gw.publish("b", "b:0");
  await until(() => late.got.length === 12, () => `${late.got}`);
  assert.deepEqual(late.got, seq("a", 2, 13).concat(["b:0"]));
  await until(() => gw.streams.size === 1, "its own stream closed once it caught up");
  assert.equal(late.sub.role, "follower");
  assert.equal(late.sub.lastEventId, all[0].sub.lastEventId);
  assert.equal(gw.requests.length, 2);
  assert.equal(gw.requests[1].url.searchParams.get("lastEventId"), from, "it streamed from its own cursor");
});

test("without BroadcastChannel it falls back to a connection per tab", async (t) => {
  const BC = globalThis.BroadcastChannel;
  globalThis.BroadcastChannel = undefined;
  t.after(() => (globalThis.BroadcastChannel = BC));
  const gw = new FakeGateway();
  const { all } = tabs(t, gw, 2, ["a"]);
  assert.deepEqual(all.map((x) => x.sub.role), ["solo", "solo"]);
  await until(() => gw.streams.size === 2);
  const { all: off } = tabs(t, gw, 1, ["a"], { share: false });
  assert.equal(off[0].sub.role, "solo");
});
