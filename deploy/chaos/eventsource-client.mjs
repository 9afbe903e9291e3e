// A client the team did not write: the `eventsource` npm package, a
// spec-following EventSource with automatic reconnect and Last-Event-ID.
//
// Usage: node eventsource-client.mjs URL
// Prints one JSON line per open, event, history-lost and error.
import { EventSource } from 'eventsource';

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const es = new EventSource(process.argv[2]);
es.addEventListener('open', () => out({ kind: 'open' }));
es.addEventListener('message', (e) => out({ kind: 'message', data: e.data, id: e.lastEventId }));
es.addEventListener('history-lost', (e) => out({ kind: 'history-lost', data: e.data, id: e.lastEventId }));
es.addEventListener('error', () => out({ kind: 'error', closed: es.readyState === EventSource.CLOSED }));
process.on('SIGTERM', () => { es.close(); process.exit(0); });
