// @ssegateway/client: a browser client for ssegateway that never loses its
// place. See README.md for the API and the design.
//
// One Subscription is one subscription of one tab. With `share` (the
// default) the tabs of an origin that subscribe to the same URL and topics
// elect one of them with a Web Lock; that tab, the holder, streams from the
// gateway and posts every event on a BroadcastChannel, and the others, the
// followers, deliver what it posts. Every tab keeps its own cursor (the last
// event it delivered), so when the holder goes away the next tab in the
// lock's queue resumes from its own cursor, and each follower decides for
// every message whether it follows its cursor, repeats what it has, or
// leaves a gap, which it fills from the holder's recent messages or, failing
// that, by streaming from the gateway itself until it has caught up.

import { openStream, toMessage } from "./wire.js";
import { cursorTag, follow, topicOf, OK, GAP } from "./cursor.js";
import { backoff, jwtExpiry, refreshDelay } from "./policy.js";

export const CONNECTING = 0, OPEN = 1, CLOSED = 2;

// The recent messages every tab keeps, to fill a follower's gap.
const RING = 512, RING_BYTES = 1 << 20;
// How long a follower waits for the holder to answer before it streams
// from the gateway itself.
const REPAIR_WAIT = 3000;

const handlers = new WeakMap();

/**
 * Subscribes to topics of a gateway: see README.md.
 *
 * @param {string | URL} url
 * @param {import("./index.js").Options} [options]
 */
export function connect(url, options) {
  return new Subscription(url, options);
}

export class Subscription extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSED = CLOSED;
  #s;
  /**
   * @param {string | URL} url
   * @param {import("./index.js").Options} [options]
   */
  constructor(url, options) {
    super();
    this.#s = start(this, String(url), options || {});
  }
  /** The URL streamed from, without the topics. */
  get url() {
    return this.#s.url;
  }
  /** The topics, sorted, without duplicates. */
  get topics() {
    return [...this.#s.topics];
  }
  /** CONNECTING (0), OPEN (1) or CLOSED (2), as an EventSource's. */
  get readyState() {
    return this.#s.readyState;
  }
  /** The cursor of the last event delivered: where a reload resumes. */
  get lastEventId() {
    return this.#s.cursor;
  }
  /** "holder" (this tab streams for all), "follower", or "solo" (not shared). */
  get role() {
    return this.#s.role;
  }
  /** Stops for good; another tab takes over if this one held the connection. */
  close() {
    this.#s.close();
  }
}

for (const t of ["open", "message", "error"]) {
  Object.defineProperty(Subscription.prototype, "on" + t, {
    configurable: true,
    get() {
      return handlers.get(this)?.[t] ?? null;
    },
    set(f) {
      let h = handlers.get(this);
      if (!h) handlers.set(this, (h = {}));
      if (h[t]) this.removeEventListener(t, h[t]);
      h[t] = typeof f === "function" ? f : null;
      if (h[t]) this.addEventListener(t, h[t]);
    },
  });
}

/**
 * The cursor's place in storage: "session", "local", an object with
 * getItem and setItem, or nothing. Storage that throws (disabled, full) is
 * treated as none.
 */
function storage(kind, key) {
  let st = null;
  try {
    st = typeof kind === "object" ? kind : kind === "local" ? globalThis.localStorage : kind === "session" ? globalThis.sessionStorage : null;
    st?.getItem(key);
  } catch {
    st = null;
  }
  return {
    get() {
      try {
        return st?.getItem(key) || "";
      } catch {
        return "";
      }
    },
    set(v) {
      try {
        st?.setItem(key, v);
      } catch {
        // full or gone: the cursor still lives in memory
      }
    },
  };
}

const fatal = (status) => status === 200 || status === 204 || (status >= 400 && status < 500 && status !== 408 && status !== 429);

function start(sub, url, o) {
  const g = globalThis;
  const u = new URL(url, g.location?.href);
  const mercure = o.protocol ? o.protocol === "mercure" : u.pathname.endsWith("/.well-known/mercure");
  const topics = [...new Set([...u.searchParams.getAll("topic"), ...(o.topics || [])])].sort();
  u.searchParams.delete("topic");
  const tags = new Map();
  for (const t of topics) {
    const k = cursorTag(t);
    tags.set(k, tags.has(k) ? null : t);
  }
  const shape = { mercure, topics, wrapped: !mercure && topics.some((t) => t.includes("*")), tags };
  const key = ["ssegateway", mercure ? "mercure" : "events", u.href, ...topics].join("\n");
  const store = storage(o.storage === undefined ? "session" : o.storage, key);
  const fetchFn = o.fetch || ((...a) => g.fetch(...a));
  const tokenIn = o.tokenIn || "header";
  const maxRetry = o.maxRetry ?? 30000;
  const me = Math.random().toString(36).slice(2);
  let retry = o.retry ?? 1000;

  const s = { url: u.href, topics, readyState: CONNECTING, role: "solo", cursor: store.get() || o.lastEventId || "", close };
  let closed = false;
  let running = false; // the stream loop runs
  let catching = false; // a follower streams from the gateway to fill a gap
  let repairing = 0; // a follower waits for the holder's recent messages (the timer)
  let asked = false; // a catching follower asked the holder where it is
  let abort = null, why = ""; // the attempt under way, and why it was aborted
  let tok, tokDue = 0, refreshTimer, sleepTimer, wake;
  let ring = [], ringBytes = 0, pending = [];
  const seen = new Set();
  let ch = null, lockAbort = null, unlead = null;

  const fire = (e, extra) => {
    Object.assign(e, extra);
    sub.dispatchEvent(e);
  };
  const post = (m) => {
    try {
      ch?.postMessage(m);
    } catch {
      // closed
    }
  };
  const stateMsg = () => ({ k: "st", rs: s.readyState, id: s.cursor });
  const active = () => !closed && (s.role !== "follower" || catching);

  function setState(rs) {
    if (s.readyState === rs || closed) return;
    s.readyState = rs;
    if (s.role === "holder") post(stateMsg());
    if (rs === OPEN) fire(new Event("open"));
  }

  function setRole(r) {
    if (s.role === r) return;
    s.role = r;
    fire(new Event("rolechange"));
  }

  // An error that does not stop the subscription: it reconnects.
  function hiccup(e) {
    setState(CONNECTING);
    if (s.role === "holder") post({ k: "err", ...e });
    fire(new Event("error"), e);
  }

  // An error that stops it (and every tab sharing it): 401, 403, 400...
  function fail(e) {
    if (s.role === "holder") post({ k: "err", fatal: true, ...e });
    close();
    fire(new Event("error"), { ...e, fatal: true });
  }

  // deliver hands m to the app if it follows this tab's cursor, and
  // remembers it; the holder also posts it to the other tabs.
  function deliver(m) {
    const [r, next] = follow(s.cursor, seen, m);
    if (r !== OK || closed || (m.cp && next === s.cursor)) return r;
    s.cursor = next;
    store.set(next);
    ring.push(m);
    seen.add(m.id);
    ringBytes += m.data?.length || 0;
    while (ring.length > RING || ringBytes > RING_BYTES) {
      const x = ring.shift();
      seen.delete(x.id);
      ringBytes -= x.data?.length || 0;
    }
    if (s.role === "holder") post(m);
    if (!m.cp) {
      const e = new MessageEvent(m.type, { data: m.data, lastEventId: s.cursor, origin: u.origin });
      fire(e, m.topics ? { topics: m.topics, reason: m.reason } : { topic: m.topic });
    }
    return r;
  }

  // What this tab's own stream dispatches.
  function own(id, type, data) {
    if (closed) return;
    if (data !== null) deliver(toMessage(shape, s.cursor, id, type, data, topicOf));
    else if (id && id !== s.cursor) deliver({ k: "ev", prev: s.cursor, id, cp: 1 });
    if (catching) merge(true);
  }

  async function token(force) {
    const t = o.token;
    if (typeof t !== "function") return t ?? null;
    if (force || tok === undefined || Date.now() >= tokDue) {
      tok = await t();
      const d = refreshDelay(jwtExpiry(tok), Date.now());
      tokDue = d === undefined ? Infinity : Date.now() + d;
    }
    return tok;
  }

  // Before the token expires, get a new one and reconnect with it, from the
  // cursor: nothing is lost, and the gateway never has to cut the stream.
  function scheduleRefresh(ac) {
    clearTimeout(refreshTimer);
    if (typeof o.token !== "function" || tokDue === Infinity) return;
    refreshTimer = setTimeout(async () => {
      try {
        await token(true);
      } catch (err) {
        // Keep streaming; the reconnect at expiry tries again.
        if (abort === ac) fire(new Event("error"), { message: "token refresh failed: " + (err?.message || err) });
        return;
      }
      if (abort === ac && !closed) {
        why = "refresh";
        ac.abort();
      }
    }, Math.max(0, tokDue - Date.now()));
  }

  const sleep = (ms) =>
    new Promise((r) => {
      wake = r;
      sleepTimer = setTimeout(r, ms);
    });

  function stop(reason) {
    why = reason;
    abort?.abort();
    clearTimeout(sleepTimer);
    wake?.();
  }

  // The stream loop, of a holder, a solo tab or a catching follower.
  async function loop() {
    if (running) return;
    running = true;
    let failures = 0, authRetry = true;
    while (active()) {
      const ac = (abort = new AbortController());
      why = "";
      let out, err;
      try {
        const t = await token(false);
        if (ac.signal.aborted) throw new Error("aborted");
        const q = new URL(u);
        for (const x of topics) q.searchParams.append("topic", x);
        // The cursor goes in the query, not in Last-Event-ID: a header
        // would cost a CORS preflight on every reconnect.
        if (s.cursor) q.searchParams.set(mercure ? "lastEventID" : "lastEventId", s.cursor);
        const headers = { Accept: "text/event-stream" };
        if (t != null && tokenIn === "header") headers.Authorization = "Bearer " + t;
        if (t != null && tokenIn === "query") q.searchParams.set(o.tokenParam || (mercure ? "authorization" : "token"), t);
        const init = { headers, signal: ac.signal, cache: "no-store", credentials: o.withCredentials || tokenIn === "cookie" ? "include" : "same-origin" };
        out = await openStream(
          fetchFn,
          q.href,
          init,
          (res) => {
            failures = 0;
            authRetry = true;
            // A Mercure hub names the newest event in a header.
            const h = mercure && !s.cursor && res.headers.get("last-event-id");
            if (h) own(h, "", null);
            scheduleRefresh(ac);
            setState(OPEN);
          },
          // Nothing more from an attempt aborted on purpose (merged into
          // the holder's messages, or replaced after a token refresh).
          (id, type, data) => ac.signal.aborted || own(id, type, data),
          (ms) => (retry = ms),
        );
      } catch (e) {
        err = e;
      }
      clearTimeout(refreshTimer);
      if (!active()) break;
      if (why) continue; // aborted on purpose (a token refresh): connect again now
      let delay = 0;
      if (err || out.opened) {
        // The network failed, or the server ended the stream (a deploy, a
        // token expiry, a slow client evicted): resume from the cursor.
        hiccup(err ? { message: String(err?.message || err) } : {});
        delay = backoff(failures++, retry, maxRetry);
      } else if (out.status === 401 && typeof o.token === "function" && authRetry) {
        authRetry = false; // once, with a fresh token
        tok = undefined;
      } else if (fatal(out.status)) {
        fail({ status: out.status, message: out.message });
        break;
      } else {
        hiccup({ status: out.status, message: out.message });
        delay = Math.max(backoff(failures++, retry, maxRetry), out.retryAfter || 0);
      }
      if (delay) await sleep(delay);
    }
    running = false;
  }

  // --- sharing ---

  function lead() {
    if (closed) return;
    clearTimeout(repairing);
    repairing = 0;
    pending = [];
    catching = false;
    if (!running) s.readyState = CONNECTING;
    setRole("holder");
    post(stateMsg());
    loop(); // a catching follower's stream carries on as the holder's
    return new Promise((r) => (unlead = r));
  }

  function onChannel(m) {
    if (closed) return;
    const holder = s.role === "holder";
    if (m.k === "hello" || m.k === "at?") {
      if (holder) post(stateMsg());
    } else if (m.k === "ring?") {
      if (holder) post({ k: "ring", to: m.from, ring });
    } else if (holder) {
      // Only the holder's own stream counts; a late message of the previous
      // holder comes again from the gateway.
    } else if (m.k === "err") {
      if (m.fatal) {
        close();
        fire(new Event("error"), { status: m.status, message: m.message, fatal: true });
      } else if (!catching) hiccup({ status: m.status, message: m.message });
    } else if (m.k === "st") {
      asked = false;
      if (!catching) setState(m.rs);
      if (m.id) shared({ k: "ev", prev: m.id, id: m.id, cp: 1 });
    } else if (m.k === "ring") {
      if (m.to === me && repairing) {
        clearTimeout(repairing);
        repairing = 0;
        const q = m.ring.concat(pending);
        pending = [];
        apply(q, catchUp);
      }
    } else if (m.k === "ev") shared(m);
  }

  function shared(m) {
    if (catching || repairing) {
      pending.push(m);
      if (pending.length > RING) pending.shift();
      if (catching) merge(false);
    } else apply([m], repair);
  }

  // Delivers q in order; on a gap keeps the rest and calls onGap.
  function apply(q, onGap) {
    for (let i = 0; i < q.length && !closed; i++) {
      if (deliver(q[i]) === GAP) {
        pending = q.slice(i);
        onGap();
        return;
      }
    }
  }

  // A follower missed messages: ask the holder for its recent ones.
  function repair() {
    post({ k: "ring?", from: me });
    repairing = setTimeout(() => {
      repairing = 0;
      catchUp();
    }, REPAIR_WAIT);
  }

  // The holder's recent messages do not reach back far enough: stream from
  // the gateway from this tab's cursor until it has caught up.
  function catchUp() {
    catching = true;
    loop();
  }

  // A catching follower goes back to the holder's messages once they
  // continue from where it is: when it has, or is just before, the newest
  // one it knows of.
  function merge(fromOwn) {
    let known = false;
    for (;;) {
      if (!pending.length) {
        if (known) break;
        return ask(fromOwn);
      }
      const r = follow(s.cursor, seen, pending[0])[0];
      if (r === GAP) return ask(fromOwn);
      if (r === OK) break;
      pending.shift();
      known = true;
    }
    catching = false;
    stop("merged");
    const q = pending;
    pending = [];
    apply(q, repair);
  }

  // Ask the holder where it is (its answer is a checkpoint to merge at);
  // only as this tab's own stream moves, so the two never ping-pong.
  function ask(fromOwn) {
    if (fromOwn && !asked) {
      asked = true;
      post({ k: "at?" });
    }
  }

  function close() {
    if (closed) return;
    closed = true;
    s.readyState = CLOSED;
    stop("close");
    clearTimeout(refreshTimer);
    clearTimeout(repairing);
    lockAbort?.abort();
    unlead?.();
    ch?.close();
  }

  const locks = g.navigator?.locks;
  if (o.share !== false && locks && g.BroadcastChannel) {
    s.role = "follower";
    ch = new g.BroadcastChannel(key);
    ch.onmessage = (e) => onChannel(e.data);
    lockAbort = new AbortController();
    locks.request(key, { signal: lockAbort.signal }, lead).catch(() => {});
    post({ k: "hello" });
  } else loop();
  return s;
}
