// A client the team did not write: headless Chromium's own EventSource,
// opened by the gateway's demo page (/?client=eventsource&topic=a&topic=b...).
//
// Usage: node browser-client.mjs PAGE_URL
// Prints one JSON line per open, event, history-lost and error of the
// page's EventSource. CHROMIUM overrides the browser path.
import { chromium } from 'playwright-core';

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
    '--no-first-run', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage();
page.on('pageerror', (e) => out({ kind: 'pageerror', message: String(e) }));
await page.exposeFunction('__chaosReport', (batch) => { for (const o of batch) out(o); });
// Wrap the page's EventSource before the page's own script runs, so every
// event it receives is recorded, in order, batched to keep the binding cheap.
await page.addInitScript(() => {
  const queue = [];
  const report = (o) => { queue.push(o); };
  setInterval(() => { if (queue.length) window.__chaosReport(queue.splice(0)); }, 20);
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      this.addEventListener('open', () => report({ kind: 'open' }));
      this.addEventListener('message', (e) => report({ kind: 'message', data: e.data, id: e.lastEventId }));
      this.addEventListener('history-lost', (e) => report({ kind: 'history-lost', data: e.data, id: e.lastEventId }));
      this.addEventListener('error', () => report({ kind: 'error', closed: this.readyState === Native.CLOSED }));
    }
  };
});
await page.goto(process.argv[2]);
out({ kind: 'page' });
const stop = async () => { await browser.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
