// Headless Chromium opens N EventSources on one page of a node and reports
// each one's open and messages: over HTTP/1.1 a browser holds at most 6
// connections per host, so only HTTP/2 lets more than 6 streams deliver.
//
// Usage: node browser-many.mjs BASE_URL N
// Prints JSON lines: {kind:"open",i}, {kind:"protocol",i,protocol} (h2 or
// http/1.1), {kind:"message",i,data}, {kind:"error",i,closed}. Certificate errors are ignored (test certs).
import { chromium } from 'playwright-core';

const [base, n] = [process.argv[2], Number(process.argv[3])];
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ ignoreHTTPSErrors: true });
const page = await context.newPage();
page.on('pageerror', (e) => out({ kind: 'pageerror', message: String(e) }));
// The protocol each stream's response came over, from the DevTools protocol.
const cdp = await context.newCDPSession(page);
await cdp.send('Network.enable');
cdp.on('Network.responseReceived', (e) => {
  const m = /[?&]topic=many-(\d+)$/.exec(e.response.url);
  if (m) out({ kind: 'protocol', i: Number(m[1]), protocol: e.response.protocol });
});
await page.exposeFunction('__report', (o) => out(o));
await page.goto(base + '/healthz');
await page.evaluate((n) => {
  for (let i = 0; i < n; i++) {
    const es = new EventSource('/events?topic=many-' + i);
    es.onopen = () => window.__report({ kind: 'open', i });
    es.onmessage = (m) => window.__report({ kind: 'message', i, data: m.data });
    es.onerror = () => window.__report({ kind: 'error', i, closed: es.readyState === EventSource.CLOSED });
  }
}, n);
out({ kind: 'page' });
const stop = async () => { await browser.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
