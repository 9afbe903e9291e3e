import { test } from "node:test";
import assert from "node:assert/strict";
import { toMessage, openStream } from "../src/wire.js";
import { cursorTag, encode, topicOf } from "../src/cursor.js";

function shape(topics, mercure = false) {
  const tags = new Map(topics.map((t) => [cursorTag(t), t]));
  return { mercure, topics, wrapped: !mercure && topics.some((t) => t.includes("*")), tags };
}

test("toMessage: one topic names it", () => {
  assert.deepEqual(toMessage(shape(["news"]), "1-0", "2-0", "message", "hi", topicOf), { k: "ev", prev: "1-0", id: "2-0", type: "message", data: "hi", topic: "news" });
});

test("toMessage: a pattern stream's envelopes are unwrapped", () => {
  const s = shape(["news", "orders/*"]);
  // Hand-written frames as the gateway sends them on a stream with a pattern.
  const frames = [
    ["status", '{"topic":"orders/42","data":"{\\"state\\":\\"shipped\\"}"}', "orders/42", '{"state":"shipped"}'],
    ["message", '{"topic":"news","data":"line 1\\nline 2"}', "news", "line 1\nline 2"],
    ["message", '{"topic":"orders/7","data":""}', "orders/7", ""],
  ];
  for (const [type, wire, topic, data] of frames) {
    const m = toMessage(s, "", "m1.x", type, wire, topicOf);
    assert.equal(m.topic, topic);
    assert.equal(m.data, data);
    assert.equal(m.type, type);
  }
  // Not an envelope: handed on untouched.
  for (const wire of ["plain", "[1]", '{"topic":1,"data":"x"}', '{"topic":"t"}', "null"]) {
    const m = toMessage(s, "", "m1.x", "message", wire, topicOf);
    assert.equal(m.data, wire);
    assert.equal(m.topic, undefined);
  }
});

test("toMessage: history-lost is parsed, and never unwrapped", () => {
  for (const s of [shape(["news"]), shape(["orders/*", "news"])]) {
    const m = toMessage(s, "", "9-0", "history-lost", '{"topics":["orders/*"],"reason":"trimmed"}', topicOf);
    assert.deepEqual(m.topics, ["orders/*"]);
    assert.equal(m.reason, "trimmed");
    assert.equal(m.data, '{"topics":["orders/*"],"reason":"trimmed"}');
    assert.equal(m.topic, undefined);
  }
});

test("toMessage: several topics without patterns: the topic from the cursor", () => {
  const s = shape(["a", "b"]);
  const c = (a, b) => encode(new Map([[cursorTag("a"), [a, 0]], [cursorTag("b"), [b, 0]]]));
  assert.equal(toMessage(s, c(1, 1), c(1, 2), "message", "x", topicOf).topic, "b");
  assert.equal(toMessage(s, c(1, 2), c(3, 2), "message", "x", topicOf).topic, "a");
});

test("toMessage: Mercure events pass as they are", () => {
  const m = toMessage(shape(["https://example.com/books/{id}"], true), "urn:1", "urn:2", "message", '{"topic":"x","data":"y"}', topicOf);
  assert.deepEqual(m, { k: "ev", prev: "urn:1", id: "urn:2", type: "message", data: '{"topic":"x","data":"y"}' });
});

// respond builds a fetch answering once with the given response.
const respond = (body, init) => async () => new Response(body, init);

test("openStream: reads events until the server ends the stream", async () => {
  const got = [];
  let opened = 0, retry = 0;
  const body = new ReadableStream({
    start(c) {
      const enc = new TextEncoder();
      c.enqueue(enc.encode("retry: 250\nid: 1-0\n\nid: 2-0\ndata: h"));
      c.enqueue(enc.encode("é\n\n").subarray(0, 1)); // a UTF-8 sequence split between chunks
      c.enqueue(enc.encode("é\n\n").subarray(1));
      c.close();
    },
  });
  const out = await openStream(respond(body, { headers: { "content-type": "text/event-stream; charset=utf-8" } }), "http://x/events", {},
    () => opened++, (id, type, data) => got.push([id, type, data]), (ms) => (retry = ms));
  assert.deepEqual(out, { opened: true, status: 200 });
  assert.equal(opened, 1);
  assert.equal(retry, 250);
  assert.deepEqual(got, [["1-0", "message", null], ["2-0", "message", "hé"]]);
});

test("openStream: refusals carry the status, the gateway's message and Retry-After", async () => {
  const json = { "content-type": "application/json" };
  let out = await openStream(respond('{"error":"invalid token: expired"}', { status: 401, headers: json }), "u", {}, assert.fail, assert.fail, assert.fail);
  assert.deepEqual(out, { opened: false, status: 401, message: "invalid token: expired", retryAfter: undefined });
  out = await openStream(respond("busy", { status: 503, headers: { "retry-after": "3" } }), "u", {}, assert.fail, assert.fail, assert.fail);
  assert.deepEqual(out, { opened: false, status: 503, message: "busy", retryAfter: 3000 });
  out = await openStream(respond("<html>", { status: 200, headers: { "content-type": "text/html" } }), "u", {}, assert.fail, assert.fail, assert.fail);
  assert.equal(out.opened, false);
  assert.equal(out.status, 200);
});
