// Mercure's conformance cases in headless Chromium: for each case, a page of
// the hub's origin opens an EventSource on /.well-known/mercure with the
// case's topic selectors and, as soon as it is open, publishes the case's
// update with fetch (a publisher-chosen id), then a control update that the
// selectors match. It reports every event the EventSource received until
// the control arrived, and a moment after.
//
// The hub delivers its updates in one order, so an update published before
// the control that has not arrived when the control does never will: the
// "must not arrive" cases are exact, not a guess from a timeout. The short
// wait after the control only guards against a late or repeated delivery.
//
// Usage: node mercure-conformance.mjs BASE_URL < input.json
//   input: {"token": publisher JWT, "cases": [{name, topics, selectors, id,
//           data, private, mustBeReceived, control, cookie}]}
//   cookie, if set, is a subscriber JWT put in the mercureAuthorization
//   cookie for that case.
// Prints JSON lines: {kind:"case", name, publish:{status,contentType,body},
// control:{...}, seen:[{type,id,data}]}, {kind:"pageerror"|"error", message},
// and {kind:"done"} at the end. Waits without timers of its own: the Go test
// bounds the whole run.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.argv[2];
const input = JSON.parse(readFileSync(0, 'utf8'));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const stop = async () => { await browser.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
try {
  const page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => out({ kind: 'pageerror', message: String(e) }));
  await page.goto(base + '/healthz');
  for (const c of input.cases) {
    const result = await page.evaluate(async ({ c, token }) => {
      if (c.cookie) document.cookie = `mercureAuthorization=${c.cookie}; path=/`;
      const url = new URL('/.well-known/mercure', location.origin);
      c.selectors.forEach((s) => url.searchParams.append('topic', s));
      const update = new URLSearchParams();
      c.topics.forEach((t) => update.append('topic', t));
      update.set('id', c.id);
      update.set('data', c.data);
      if (c.private) update.set('private', 'on');
      const control = new URLSearchParams({ topic: c.control, id: c.id + '/control', data: 'control' });

      const seen = [];
      let controlArrived;
      const controlSeen = new Promise((resolve) => { controlArrived = resolve; });
      const es = new EventSource(url, { withCredentials: true });
      es.onmessage = (e) => {
        seen.push({ type: e.type, id: e.lastEventId, data: e.data });
        if (e.lastEventId === control.get('id')) controlArrived();
      };
      await new Promise((resolve, reject) => {
        es.onopen = resolve;
        es.onerror = () => { if (es.readyState === EventSource.CLOSED) reject(new Error('the EventSource failed')); };
      });
      // Published as soon as the EventSource is open, as the conformance
      // suite does.
      const post = async (body) => {
        const r = await fetch('/.well-known/mercure', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, body });
        return { status: r.status, contentType: r.headers.get('Content-Type'), body: await r.text() };
      };
      const published = await post(update);
      const controlled = await post(control);
      await controlSeen;
      await new Promise((resolve) => setTimeout(resolve, 300));
      es.close();
      if (c.cookie) document.cookie = 'mercureAuthorization=; path=/; max-age=0';
      return { publish: published, control: controlled, seen };
    }, { c, token: input.token });
    out({ kind: 'case', name: c.name, ...result });
  }
  out({ kind: 'done' });
} catch (e) {
  out({ kind: 'error', message: String(e) });
}
await browser.close();
