// When to reconnect and when to refresh a token.

/**
 * The delay before reconnect attempt number `failures` (0 after a stream
 * that was open and ended): the server's retry: value, doubled for every
 * failed attempt in a row up to max, plus up to half of it again at random,
 * so that the clients of a node that went away do not all come back at once.
 * Never sooner than the server asked.
 *
 * @param {number} failures
 * @param {number} retry the server's retry: in milliseconds
 * @param {number} max
 * @param {() => number} [rand]
 */
export function backoff(failures, retry, max, rand = Math.random) {
  const d = Math.min(max, retry * 2 ** Math.min(failures, 20));
  return Math.max(retry, d) * (1 + rand() / 2);
}

/**
 * The expiry of a JWT in milliseconds since the epoch, read (not verified)
 * from its exp claim; undefined if it is not a JWT with one.
 *
 * @param {unknown} token
 */
export function jwtExpiry(token) {
  try {
    const b64 = String(token).split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(b64)).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long after getting a token that expires at exp to get the next one:
 * a fifth of its lifetime before expiry, at least 5 s and at most a minute
 * before, but never before half of its lifetime has passed. Undefined for a
 * token without an expiry, or one that looks expired already (a skewed
 * clock): a 401 refreshes those.
 *
 * @param {number | undefined} exp
 * @param {number} now
 */
export function refreshDelay(exp, now) {
  const life = (exp ?? NaN) - now;
  if (!(life > 0)) return undefined;
  return Math.max(life / 2, life - Math.min(60e3, Math.max(5e3, life / 5)));
}
