// The wire: a text/event-stream parser, one stream over fetch, and the
// gateway's event frames turned into the messages the client hands on.

/**
 * A parser of text/event-stream as the WHATWG HTML standard defines it
 * ("Server-sent events", the event stream interpretation). Feed it decoded
 * text in chunks of any size; lines may end in CR, LF or CRLF, even split
 * across chunks.
 *
 * At every blank line it calls dispatch(id, type, data): id is the stream's
 * last event id buffer (which, as the standard says, starts empty on every
 * connection and is not reset between events), type the event type
 * ("message" if none was given) and data the data with its final LF removed,
 * or null when the event had no data field: then only the last event id
 * changes and no event is dispatched (the gateway's checkpoint). A valid
 * retry: field calls retry(ms).
 *
 * @param {(id: string, type: string, data: string | null) => void} dispatch
 * @param {(ms: number) => void} retry
 * @returns {(chunk: string) => void}
 */
export function createParser(dispatch, retry) {
  let buf = "", id = "", type = "", data = "", hasData = false, skipLF = false, start = true;
  const line = (l) => {
    if (l === "") {
      if (hasData) dispatch(id, type || "message", data.slice(0, -1));
      else dispatch(id, type || "message", null);
      type = data = "";
      hasData = false;
      return;
    }
    const i = l.indexOf(":");
    if (i === 0) return; // a comment
    const field = i < 0 ? l : l.slice(0, i);
    const value = i < 0 ? "" : l.slice(l[i + 1] === " " ? i + 2 : i + 1);
    if (field === "data") {
      data += value + "\n";
      hasData = true;
    } else if (field === "event") type = value;
    else if (field === "id") {
      if (!value.includes("\0")) id = value;
    } else if (field === "retry" && /^\d+$/.test(value)) retry(+value);
  };
  const eol = /\r\n?|\n/g;
  return (chunk) => {
    let s = buf + chunk, pos = 0, m;
    if (start && s) {
      start = false;
      if (s[0] === "\ufeff") pos = 1;
    }
    if (skipLF && s.length > pos) {
      if (s[pos] === "\n") pos++;
      skipLF = false;
    }
    eol.lastIndex = pos;
    while ((m = eol.exec(s))) {
      line(s.slice(pos, m.index));
      pos = eol.lastIndex;
      // A CR at the end of the text may be the first half of a CRLF.
      if (m[0] === "\r" && pos === s.length) skipLF = true;
    }
    buf = s.slice(pos);
  };
}

/**
 * How one attempt to stream ended. `opened` says the response was a 200
 * text/event-stream (and then the stream ended: the server closed it);
 * otherwise `status` is the HTTP status, `message` what the body said and
 * `retryAfter` the Retry-After header in milliseconds, if any.
 *
 * @typedef {{opened: boolean, status: number, message?: string, retryAfter?: number, checkpoint?: string}} Outcome
 */

/**
 * Runs one stream over fetch until the server ends it. It rejects when the
 * network fails or signal aborts.
 *
 * @param {typeof fetch} fetchFn
 * @param {string} url
 * @param {RequestInit} init
 * @param {(res: Response) => void} onOpen
 * @param {(id: string, type: string, data: string | null) => void} dispatch
 * @param {(ms: number) => void} retry
 * @returns {Promise<Outcome>}
 */
export async function openStream(fetchFn, url, init, onOpen, dispatch, retry) {
  const res = await fetchFn(url, init);
  const status = res.status;
  if (status !== 200 || !/^text\/event-stream/i.test(res.headers.get("content-type") || "")) {
    let message = "";
    try {
      message = (await res.text()).slice(0, 1000);
      message = JSON.parse(message).error || message;
    } catch {
      // not JSON: keep the text
    }
    const ra = Number(res.headers.get("retry-after"));
    return { opened: false, status, message: message || (status === 200 ? "not an event stream" : ""), retryAfter: ra > 0 ? ra * 1000 : undefined };
  }
  onOpen(res);
  const feed = createParser(dispatch, retry);
  const reader = res.body.getReader();
  // The parser removes the one byte order mark the standard allows.
  const dec = new TextDecoder("utf-8", { ignoreBOM: true });
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return { opened: true, status };
    feed(dec.decode(value, { stream: true }));
  }
}

/**
 * A message: one event or checkpoint of the subscription as the tab that
 * holds the connection hands it to every tab. `prev` is the holder's
 * position before it and `id` after it; a checkpoint (`cp`) only moves the
 * position.
 *
 * @typedef {{k: "ev", prev: string, id: string, cp?: 1, type?: string, data?: string, topic?: string, topics?: string[], reason?: string}} Message
 */

/**
 * What the client knows about a subscription's wire format.
 *
 * @typedef {{mercure: boolean, topics: string[], wrapped: boolean, tags: Map<string, string | null>}} Shape
 */

/**
 * Turns one event of the stream into a message: a history-lost event's data
 * parsed into topics and reason; on a stream with a topic pattern the
 * envelope {"topic": ..., "data": ...} unwrapped; and the topic named where
 * it can be known (see topicOf).
 *
 * @param {Shape} shape
 * @param {string} prev the cursor before this event
 * @param {string} id the cursor the event came with
 * @param {string} type
 * @param {string} data
 * @param {(prev: string, id: string, tags: Map<string, string | null>) => string | undefined} topicOf
 * @returns {Message}
 */
export function toMessage(shape, prev, id, type, data, topicOf) {
  /** @type {Message} */
  const m = { k: "ev", prev, id, type, data };
  if (shape.mercure) return m;
  if (type === "history-lost") {
    try {
      const j = JSON.parse(data);
      m.topics = j.topics;
      m.reason = j.reason;
    } catch {
      // not from the gateway: hand it on as it is
    }
  } else if (shape.wrapped) {
    try {
      const j = JSON.parse(data);
      if (typeof j.topic === "string" && typeof j.data === "string") {
        m.topic = j.topic;
        m.data = j.data;
      }
    } catch {
      // not an envelope: hand it on as it is
    }
  } else if (shape.topics.length === 1) m.topic = shape.topics[0];
  else m.topic = topicOf(prev, id, shape.tags);
  return m;
}
