import { test } from "node:test";
import assert from "node:assert/strict";
import { cursorTag, positions, encode, follow, topicOf, DUP, OK, GAP } from "../src/cursor.js";

test("cursorTag: the gateway's tags", () => {
  // Computed with gateway/cursor.go's cursorTag.
  const want = { news: "2aIA", "orders/42": "82wx", a: "vVxE", b: "KhpV", demo: "gRRm", "orders/*": "pfoX", "x:y@z=+~": "DgxO" };
  for (const [topic, tag] of Object.entries(want)) assert.equal(cursorTag(topic), tag, topic);
});

test("positions and encode: both formats round-trip", () => {
  for (const c of ["1732406400000-3", "0-0", "m1.KhpV0.gRRm0", "m1.vVxEVbqPlQW_1.KhpVVbqPlQh"]) assert.equal(encode(positions(c)), c);
  assert.deepEqual(positions("1732406400000-3"), new Map([["", [1732406400000, 3]]]));
  assert.deepEqual([...positions("m1.vVxE10_2.KhpVz")], [["vVxE", [62, 2]], ["KhpV", [61, 0]]]);
  for (const bad of ["", "abc", "m1.", "m1.vVx", "m1.vVxE1.vVxE2", "m1.vVxE1_", "1-", "-1", "1-2-3"]) assert.equal(positions(bad), null, bad);
});

// c builds a two-topic cursor (topics a then b) from their positions.
const c = (a, b) => encode(new Map([["vVxE", [a, 0]], ["KhpV", [b, 0]]]));
const tags = new Map([["vVxE", "a"], ["KhpV", "b"]]);

test("topicOf: the topic whose position moved", () => {
  assert.equal(topicOf(c(1, 1), c(2, 1), tags), "a");
  assert.equal(topicOf(c(1, 1), c(1, 2), tags), "b");
  assert.equal(topicOf(c(1, 1), c(2, 2), tags), undefined, "two moved");
  assert.equal(topicOf("", c(2, 2), tags), undefined, "no position before");
  assert.equal(topicOf(c(1, 1), c(2, 1), new Map([["vVxE", null]])), undefined, "two topics share the tag");
});

test("follow: a tab in step with the holder", () => {
  const seen = new Set();
  assert.deepEqual(follow("", seen, { prev: "", id: "5-0" }), [OK, "5-0"], "no cursor yet: start here");
  assert.deepEqual(follow("", seen, { prev: "4-0", id: "5-0" }), [OK, "5-0"]);
  assert.deepEqual(follow("4-0", seen, { prev: "4-0", id: "5-0" }), [OK, "5-0"]);
  assert.deepEqual(follow("5-0", seen, { prev: "4-0", id: "5-0" }), [DUP]);
  assert.deepEqual(follow("6-0", seen, { prev: "4-0", id: "5-0" }), [DUP], "ahead of the new holder");
  assert.deepEqual(follow("3-0", seen, { prev: "4-0", id: "5-0" }), [GAP], "4-0 never arrived");
  assert.deepEqual(follow("5-0", seen, { prev: "5-0", id: "5-0" }), [OK, "5-0"], "the holder's position, as a checkpoint");
  assert.deepEqual(follow("4-0", seen, { prev: "5-0", id: "5-0" }), [GAP], "behind the holder");
});

test("follow: after a takeover the gateway replays topic by topic", () => {
  const seen = new Set();
  // The old holder delivered a1 b1 a2 live; this tab has all three, the
  // new holder only a1, and replays a2 then b1.
  const mine = c(2, 1);
  assert.deepEqual(follow(mine, seen, { prev: c(1, 0), id: c(2, 0) }), [DUP]);
  assert.deepEqual(follow(mine, seen, { prev: c(2, 0), id: c(2, 1) }), [DUP]);
  assert.deepEqual(follow(mine, seen, { prev: c(2, 1), id: c(3, 1) }), [OK, c(3, 1)]);
  // This tab is ahead in b only; the holder's next a follows it in a.
  assert.deepEqual(follow(c(2, 2), seen, { prev: c(2, 1), id: c(3, 1) }), [OK, c(3, 2)]);
  // Behind in a: a gap.
  assert.deepEqual(follow(c(1, 1), seen, { prev: c(2, 1), id: c(3, 1) }), [GAP]);
  // A history-lost event moving both topics, from where this tab is.
  assert.deepEqual(follow(c(2, 2), seen, { prev: c(2, 2), id: c(9, 9) }), [OK, c(9, 9)]);
});

test("follow: other ids are compared for equality", () => {
  const seen = new Set(["urn:a", "urn:b"]);
  assert.deepEqual(follow("urn:b", seen, { prev: "urn:b", id: "urn:c" }), [OK, "urn:c"]);
  assert.deepEqual(follow("urn:b", seen, { prev: "urn:a", id: "urn:b" }), [DUP]);
  assert.deepEqual(follow("urn:c", seen, { prev: "urn:a", id: "urn:b" }), [DUP], "seen recently");
  assert.deepEqual(follow("urn:b", seen, { prev: "urn:x", id: "urn:y" }), [GAP]);
});
