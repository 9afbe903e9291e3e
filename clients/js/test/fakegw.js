// A gateway in memory for the unit tests: GET /events over a fetch function,
// with the real wire format and cursors (one topic: <ms>-<seq>; several: m1),
// replay after a cursor topic by topic (as the gateway does), then live
// events. Plus a fake Web Locks manager.
import { cursorTag, encode, positions } from "../src/cursor.js";

export class FakeGateway {
  constructor() {
    /** @type {Map<string, {id: number[], type?: string, data: string}[]>} */
    this.logs = new Map();
    this.ms = 1000;
    this.streams = new Set();
    /** Every request: {url: URL, headers, credentials}. */
    this.requests = [];
    /** Answers a request instead of the gateway when it returns a Response. */
    this.respond = null;
    this.fetch = (url, init) => this.#fetch(url, init);
  }

  log(topic) {
    if (!this.logs.has(topic)) this.logs.set(topic, []);
    return this.logs.get(topic);
  }

  /** Publishes data to topic; returns the event id. */
  publish(topic, data, type) {
    const e = { id: [this.ms++, 0], type, data };
    this.log(topic).push(e);
    for (const st of this.streams) st.live(topic, e);
    return e.id.join("-");
  }

  /** Ends every open stream, as a node that drains does. */
  endAll() {
    for (const st of [...this.streams]) st.end();
  }

  async #fetch(url, init = {}) {
    const u = new URL(url);
    const req = { url: u, headers: init.headers || {}, credentials: init.credentials };
    this.requests.push(req);
    const r = this.respond?.(req);
    if (r) return r;
    const topics = u.searchParams.getAll("topic");
    const cursor = u.searchParams.get("lastEventId") || "";
    const gw = this;
    const enc = new TextEncoder();
    let ctl;
    const st = {
      tag: (t) => (topics.length === 1 ? "" : cursorTag(t)),
      pos: new Map(),
      write: (s) => ctl.enqueue(enc.encode(s)),
      id() {
        return encode(st.pos);
      },
      frame(e) {
        return `id: ${st.id()}\n${e.type ? `event: ${e.type}\n` : ""}data: ${e.data}\n\n`;
      },
      live(topic, e) {
        if (!topics.includes(topic)) return;
        st.pos.set(st.tag(topic), e.id);
        st.write(st.frame(e));
      },
      end() {
        gw.streams.delete(st);
        ctl.close();
      },
    };
    const body = new ReadableStream({
      start(c) {
        ctl = c;
      },
    });
    init.signal?.addEventListener("abort", () => {
      gw.streams.delete(st);
      try {
        ctl.error(new DOMException("aborted", "AbortError"));
      } catch {
        // already closed
      }
    });
    const from = positions(cursor);
    const last = (t) => this.log(t).at(-1)?.id || [0, 0];
    for (const t of topics) st.pos.set(st.tag(t), from?.get(st.tag(t)) || last(t));
    st.write("retry: 10\n");
    let replayed = false;
    for (const t of topics) {
      const p = st.pos.get(st.tag(t));
      for (const e of this.log(t)) {
        if (e.id[0] > p[0] || (e.id[0] === p[0] && e.id[1] > p[1])) {
          st.pos.set(st.tag(t), e.id);
          st.write(st.frame(e));
          replayed = true;
        }
      }
    }
    if (!replayed) st.write(`id: ${st.id()}\n\n`);
    this.streams.add(st);
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  }
}

/** Web Locks, as far as the client uses them: exclusive, queued in order. */
export class FakeLocks {
  #queues = new Map();
  request(name, opts, cb) {
    return new Promise((resolve, reject) => {
      const q = this.#queues.get(name) || [];
      this.#queues.set(name, q);
      const entry = { cb, resolve, reject, granted: false };
      opts.signal?.addEventListener("abort", () => {
        if (entry.granted) return;
        q.splice(q.indexOf(entry), 1);
        reject(new DOMException("aborted", "AbortError"));
      });
      q.push(entry);
      if (q.length === 1) this.#grant(q);
    });
  }
  #grant(q) {
    const e = q[0];
    e.granted = true;
    Promise.resolve()
      .then(() => e.cb({}))
      .then(e.resolve, e.reject)
      .finally(() => {
        q.shift();
        if (q.length) this.#grant(q);
      });
  }
}

/** Polls cond until it holds, or fails after a while with msg. */
export async function until(cond, msg = "condition", ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + (typeof msg === "function" ? msg() : msg));
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A storage object in memory. */
export function memoryStorage(init = {}) {
  const m = new Map(Object.entries(init));
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), map: m };
}
