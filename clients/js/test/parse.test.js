import { test } from "node:test";
import assert from "node:assert/strict";
import { createParser } from "../src/wire.js";

// parse feeds chunks to a parser and returns what it dispatched.
function parse(...chunks) {
  const out = [];
  const feed = createParser((id, type, data) => out.push(data === null ? { id } : { id, type, data }), (ms) => out.push({ retry: ms }));
  for (const c of chunks) feed(c);
  return out;
}

test("parser: the gateway's frames", () => {
  assert.deepEqual(parse("retry: 2000\nid: 1-0\n\nid: 2-0\nevent: status\ndata: {\"a\":1}\n\nid: 3-0\ndata: x\n\n"), [
    { retry: 2000 },
    { id: "1-0" }, // the checkpoint: the id moves, no event
    { id: "2-0", type: "status", data: '{"a":1}' },
    { id: "3-0", type: "message", data: "x" },
  ]);
});

test("parser: line ends CR, LF and CRLF, split anywhere", () => {
  const text = "data: a\r\ndata: b\rdata: c\n\r\nid: 7\r\rdata:d\n\n";
  const want = [{ id: "", type: "message", data: "a\nb\nc" }, { id: "7" }, { id: "7", type: "message", data: "d" }];
  assert.deepEqual(parse(text), want);
  // Every split point, including between the CR and LF of a CRLF.
  for (let i = 0; i <= text.length; i++) assert.deepEqual(parse(text.slice(0, i), text.slice(i)), want, `split at ${i}`);
  assert.deepEqual(parse(...text.split("")), want, "one character at a time");
});

test("parser: a CR ending a chunk then a lone LF is one line end, not two", () => {
  assert.deepEqual(parse("data: a\r", "\n", "\n"), [{ id: "", type: "message", data: "a" }]);
  assert.deepEqual(parse("data: a\r", "", "\n", "data: b\n\n"), [{ id: "", type: "message", data: "a\nb" }]);
});

test("parser: fields as the standard reads them", () => {
  assert.deepEqual(parse("\ufeffdata: bom\n\n"), [{ id: "", type: "message", data: "bom" }], "one leading BOM is dropped");
  assert.deepEqual(parse(": comment\ndata\n\n"), [{ id: "", type: "message", data: "" }], "a field with no colon has an empty value");
  assert.deepEqual(parse("data:no space\ndata:  two spaces\n\n"), [{ id: "", type: "message", data: "no space\n two spaces" }]);
  assert.deepEqual(parse("id: a\0b\ndata: x\n\n"), [{ id: "", type: "message", data: "x" }], "an id with NUL is ignored");
  assert.deepEqual(parse("retry: 1x\nretry: \nretry: 50\n"), [{ retry: 50 }], "retry takes digits only");
  assert.deepEqual(parse("event: a\n\ndata: x\n\n"), [{ id: "" }, { id: "", type: "message", data: "x" }], "the type is reset at a blank line");
  assert.deepEqual(parse("id: 1\ndata: x\n\ndata: y\n\n"), [
    { id: "1", type: "message", data: "x" },
    { id: "1", type: "message", data: "y" },
  ], "the id buffer is kept between events");
  assert.deepEqual(parse("data: x\n"), [], "an unterminated event is not dispatched");
  assert.deepEqual(parse("foo: bar\ndata: x\n\n"), [{ id: "", type: "message", data: "x" }], "unknown fields are ignored");
});
