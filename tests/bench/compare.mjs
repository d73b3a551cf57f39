// tests/bench/compare.mjs — times one tool call against any stdio MCP server with raw
// JSON-RPC lines, so different servers are measured by the same client code.
// usage: node compare.mjs --name LABEL --cmd "SERVER COMMAND" --tool NAME --args JSON
//                         [--n 500] [--conc 1] [--setup JSON-RPC-REQUEST-JSON]
// Prints one JSON line: cold start, p50/p90/p99 (ms), calls/s, peak RSS of the server tree.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const opt = {};
for (let i = 2; i < process.argv.length; i += 2) opt[process.argv[i].slice(2)] = process.argv[i + 1];
const n = Number(opt.n ?? 500), conc = Number(opt.conc ?? 1);

function treeRssKb(root) {
  const children = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  let total = 0;
  for (const stack = [root]; stack.length;) {
    const p = stack.pop();
    try { total += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0); } catch { /* gone */ }
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

const t0 = process.hrtime.bigint();
const child = spawn('/bin/sh', ['-c', `exec ${opt.cmd}`], { stdio: ['pipe', 'pipe', 'ignore'] });
const waiting = new Map();
let nextId = 1, pending = '';
child.stdout.on('data', (chunk) => {
  pending += chunk;
  for (let nl; (nl = pending.indexOf('\n')) >= 0;) {
    const line = pending.slice(0, nl); pending = pending.slice(nl + 1);
    if (!line.trim()) continue;
    const msg = JSON.parse(line);
    const w = waiting.get(msg.id);
    if (w) { waiting.delete(msg.id); w(msg); }
  }
});
const request = (method, params) => new Promise((resolve) => {
  const id = nextId++;
  waiting.set(id, resolve);
  child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id, method, params }) + '\n');
});

const init = await request('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'compare', version: '1' } });
const coldMs = Number(process.hrtime.bigint() - t0) / 1e6;
child.stdin.write(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }) + '\n');
if (opt.setup) { const s = JSON.parse(opt.setup); await request(s.method, s.params); }
const args = JSON.parse(opt.args);
const call = () => request('tools/call', { name: opt.tool, arguments: args });
let sample;
for (let i = 0; i < 10; i++) sample = await call();
const idleKb = treeRssKb(child.pid);

const lat = []; let peakKb = 0, started = 0;
const sampler = setInterval(() => { peakKb = Math.max(peakKb, treeRssKb(child.pid)); }, 100);
const wall0 = process.hrtime.bigint();
await Promise.all(Array.from({ length: conc }, async () => {
  while (started < n) {
    started++;
    const s = process.hrtime.bigint();
    sample = await call();
    lat.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
}));
const wallMs = Number(process.hrtime.bigint() - wall0) / 1e6;
clearInterval(sampler);
peakKb = Math.max(peakKb, treeRssKb(child.pid));
lat.sort((a, b) => a - b);
const q = (p) => Number(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))].toFixed(3));
console.log(JSON.stringify({
  name: opt.name, n, conc, cold_start_ms: Number(coldMs.toFixed(1)), p50_ms: q(0.5), p90_ms: q(0.9),
  p99_ms: q(0.99), calls_per_s: Number((n / wallMs * 1000).toFixed(1)), idle_tree_rss_kb: idleKb,
  peak_tree_rss_kb: peakKb, server: init.result?.serverInfo?.name,
  ok: !sample.error && !sample.result?.isError,
}));
child.kill('SIGTERM');
