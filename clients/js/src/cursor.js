// The cursor: what the gateway sends in id: and takes back to resume.
//
// To the gateway's clients it is opaque, and so it is to this client, except
// where tabs that share a connection must agree on who has seen what: there
// it reads the gateway's two formats (gateway/cursor.go):
//
//   one topic:     <ms>-<seq>, the event's Redis stream id
//   several:       m1.<tag><ms62>[_<seq62>].<tag>...  one position per topic,
//                  <tag> 4 base62 characters of the FNV-1a hash of the topic
//
// Anything else (a Mercure hub's event ids, a future format) is compared
// only for equality.

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * The 4-character tag the gateway gives a topic in a cursor: FNV-1a 32 of
 * its bytes, modulo 62^4, in base62.
 *
 * @param {string} topic
 */
export function cursorTag(topic) {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(topic)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  h %= 62 ** 4;
  let s = "";
  for (let i = 0; i < 4; i++, h = Math.floor(h / 62)) s = B62[h % 62] + s;
  return s;
}

/** @param {string} s */
const from62 = (s) => [...s].reduce((v, c) => v * 62 + B62.indexOf(c), 0);
/** @param {number} v */
const to62 = (v) => {
  let s = "";
  do {
    s = B62[v % 62] + s;
    v = Math.floor(v / 62);
  } while (v);
  return s;
};

/**
 * A cursor's positions: tag → [ms, seq] ("" is the tag of a one-topic
 * cursor), or null if it is not a gateway cursor.
 *
 * @param {string} c
 * @returns {Map<string, number[]> | null}
 */
export function positions(c) {
  let m = /^(\d+)-(\d+)$/.exec(c);
  if (m) return new Map([["", [+m[1], +m[2]]]]);
  if (!c.startsWith("m1.")) return null;
  const p = new Map();
  for (const e of c.slice(3).split(".")) {
    if (!(m = /^([0-9A-Za-z]{4})([0-9A-Za-z]+)(?:_([0-9A-Za-z]+))?$/.exec(e)) || p.has(m[1])) return null;
    p.set(m[1], [from62(m[2]), m[3] ? from62(m[3]) : 0]);
  }
  return p;
}

/**
 * The cursor of positions, in the gateway's format.
 *
 * @param {Map<string, number[]>} p
 */
export function encode(p) {
  const one = p.get("");
  if (one) return one[0] + "-" + one[1];
  return "m1." + [...p].map(([t, [ms, seq]]) => t + to62(ms) + (seq ? "_" + to62(seq) : "")).join(".");
}

/** @param {number[] | undefined} a @param {number[] | undefined} b */
const cmp = (a, b) => (a && b ? a[0] - b[0] || a[1] - b[1] : a ? 1 : b ? -1 : 0);

/**
 * The topic of an event on a stream of several topics without patterns,
 * where the wire does not name it: the one topic whose position moved from
 * prev to id. Undefined when that is not exactly one topic, or when two of
 * the subscription's topics share a tag.
 *
 * @param {string} prev
 * @param {string} id
 * @param {Map<string, string | null>} tags tag → topic (null: shared by two)
 */
export function topicOf(prev, id, tags) {
  const p = prev ? positions(prev) : null, n = positions(id);
  if (!p || !n) return;
  const moved = [...n.keys()].filter((t) => cmp(p.get(t), n.get(t)));
  return moved.length === 1 ? tags.get(moved[0]) ?? undefined : undefined;
}

export const DUP = 0, OK = 1, GAP = 2;

/**
 * Decides what a message from the tab holding the connection means to a tab
 * at cursor cur: DUP (it has it already), OK (it follows: [OK, the new
 * cursor]) or GAP (something between is missing).
 *
 * A tab that is in step with the holder sees each message's prev equal its
 * own cursor. After a takeover the new holder resumes from its own position,
 * which may be behind or ahead of another tab's, and the gateway replays a
 * stream's missed events topic by topic: so gateway cursors are compared
 * per topic. A message is a duplicate when the tab is at or past it in
 * every topic, and follows when, in every topic it is behind in, it is
 * exactly at the message's prev. Other cursors are compared for equality,
 * with `seen`, the ids of the messages the tab delivered recently.
 *
 * @param {string} cur the tab's cursor ("" if it has none)
 * @param {{has(id: string): boolean}} seen
 * @param {{prev: string, id: string}} m
 * @returns {[number, string?]}
 */
export function follow(cur, seen, m) {
  if (!cur || m.prev === cur) return [OK, m.id];
  const c = positions(cur), n = positions(m.id), p = m.prev ? positions(m.prev) : new Map();
  if (c && n && p) {
    const behind = [...n.keys()].filter((t) => cmp(c.get(t), n.get(t)) < 0);
    if (!behind.length) return [DUP];
    if (behind.some((t) => cmp(c.get(t), p.get(t)))) return [GAP];
    for (const t of behind) c.set(t, n.get(t));
    return [OK, encode(c)];
  }
  if (m.id === cur || seen.has(m.id)) return [DUP];
  return [GAP];
}
