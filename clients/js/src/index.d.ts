// Types of @ssegateway/client. See README.md.

export const CONNECTING: 0;
export const OPEN: 1;
export const CLOSED: 2;

export interface Options {
  /** Topics and patterns, as GET /events takes them; added to any topic= in the URL. */
  topics?: string[];
  /** One connection per browser (origin) for the same URL and topics. Default true. */
  share?: boolean;
  /**
   * Where the cursor is kept across reloads: "session" (default: this tab),
   * "local" (every tab, across sessions), "none" / null, or any object with
   * getItem and setItem.
   */
  storage?: "session" | "local" | "none" | null | Pick<Storage, "getItem" | "setItem">;
  /**
   * The token: a string, or a function returning one (or a promise of one).
   * A function is called before each connection that needs a new token,
   * again before a JWT expires (its exp claim is read, not verified), and
   * once more on a 401.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * How the token reaches the gateway: "header" (default; Authorization:
   * Bearer), "query" (the tokenParam query parameter, when the gateway
   * enables --token-query-param), or "cookie" (your token function sets the
   * cookie; the client only sends credentials and uses the returned JWT's
   * expiry to reconnect in time).
   */
  tokenIn?: "header" | "query" | "cookie";
  /** The query parameter of tokenIn "query": default "token" ("authorization" for Mercure). */
  tokenParam?: string;
  /** Send cookies to another origin (credentials: "include"). */
  withCredentials?: boolean;
  /** "events" (GET /events) or "mercure"; default: "mercure" when the path ends in /.well-known/mercure. */
  protocol?: "events" | "mercure";
  /** Where to start when nothing is stored. */
  lastEventId?: string;
  /** Reconnect delay until the server sends retry:, in ms (default 1000). */
  retry?: number;
  /** Longest reconnect delay after failed attempts, in ms (default 30000). */
  maxRetry?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

/** An event as published: data, the cursor in lastEventId, and its topic. */
export interface GatewayMessageEvent extends MessageEvent<string> {
  /**
   * The topic it was published to: the subscription's topic if it has one;
   * the concrete topic on a subscription with a pattern; on several topics,
   * the one whose position moved in the cursor. Undefined on Mercure.
   */
  readonly topic?: string;
}

/** The gateway could not deliver some events: refetch these topics' state. */
export interface HistoryLostEvent extends MessageEvent<string> {
  readonly topics: string[];
  readonly reason: "trimmed" | "invalid-cursor" | string;
}

/** A connection failed or ended. With fatal (401, 403, 400...) the subscription is closed. */
export interface SubscriptionErrorEvent extends Event {
  readonly status?: number;
  readonly message?: string;
  readonly fatal?: boolean;
}

interface SubscriptionEventMap {
  open: Event;
  error: SubscriptionErrorEvent;
  message: GatewayMessageEvent;
  "history-lost": HistoryLostEvent;
  rolechange: Event;
}

export class Subscription extends EventTarget {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  constructor(url: string | URL, options?: Options);
  /** The URL streamed from, without the topics. */
  readonly url: string;
  /** The topics, sorted, without duplicates. */
  readonly topics: string[];
  /** CONNECTING, OPEN or CLOSED, as an EventSource's; a follower mirrors the holder's. */
  readonly readyState: 0 | 1 | 2;
  /** The cursor of the last event this tab delivered. */
  readonly lastEventId: string;
  /** "holder": this tab streams for every tab; "follower"; "solo": not shared. */
  readonly role: "holder" | "follower" | "solo";
  onopen: ((this: Subscription, e: Event) => unknown) | null;
  onmessage: ((this: Subscription, e: GatewayMessageEvent) => unknown) | null;
  onerror: ((this: Subscription, e: SubscriptionErrorEvent) => unknown) | null;
  addEventListener<K extends keyof SubscriptionEventMap>(type: K, listener: (this: Subscription, e: SubscriptionEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  /** Events published with a type arrive under that type. */
  addEventListener(type: string, listener: (this: Subscription, e: GatewayMessageEvent) => unknown, options?: boolean | AddEventListenerOptions): void;
  removeEventListener(type: string, listener: (e: any) => unknown, options?: boolean | EventListenerOptions): void;
  /** Stops for good; if this tab held the connection, another tab takes over. */
  close(): void;
}

/** Subscribes to topics of a gateway. */
export function connect(url: string | URL, options?: Options): Subscription;
