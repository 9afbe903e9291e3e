import { test } from "node:test";
import assert from "node:assert/strict";
import { backoff, jwtExpiry, refreshDelay } from "../src/policy.js";

test("backoff: the server's retry, doubled per failure up to the maximum, plus up to half", () => {
  const lo = () => 0, hi = () => 0.999999;
  assert.equal(backoff(0, 2000, 30000, lo), 2000, "never sooner than the server asked");
  assert.ok(backoff(0, 2000, 30000, hi) < 3000);
  assert.equal(backoff(1, 2000, 30000, lo), 4000);
  assert.equal(backoff(3, 2000, 30000, lo), 16000);
  assert.equal(backoff(10, 2000, 30000, lo), 30000);
  assert.equal(backoff(1000, 2000, 30000, lo), 30000, "no overflow");
  assert.equal(backoff(0, 60000, 30000, lo), 60000, "a server asking for more than the maximum gets it");
  const spread = new Set(Array.from({ length: 50 }, () => Math.round(backoff(0, 1000, 30000))));
  assert.ok(spread.size > 10, "jittered");
});

const b64u = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const jwt = (claims) => `${b64u({ alg: "HS256", typ: "JWT" })}.${b64u(claims)}.sig`;

test("jwtExpiry: exp read without verifying", () => {
  assert.equal(jwtExpiry(jwt({ exp: 1767225600, sub: "ü" })), 1767225600000);
  assert.equal(jwtExpiry(jwt({ sub: "x" })), undefined);
  assert.equal(jwtExpiry("opaque-token"), undefined);
  assert.equal(jwtExpiry("a.!!!.c"), undefined);
  assert.equal(jwtExpiry(undefined), undefined);
});

test("refreshDelay: well before expiry, never in a loop", () => {
  const now = 1_000_000;
  assert.equal(refreshDelay(now + 3600e3, now), 3540e3, "an hour: a minute before");
  assert.equal(refreshDelay(now + 60e3, now), 48e3, "a minute: a fifth before");
  assert.equal(refreshDelay(now + 20e3, now), 15e3, "20 s: 5 s before");
  assert.equal(refreshDelay(now + 6e3, now), 3e3, "short: at half its life");
  assert.equal(refreshDelay(now - 1, now), undefined, "already expired (a skewed clock): left to the 401");
  assert.equal(refreshDelay(undefined, now), undefined);
});
