// End-to-end test: drive the built shellwire binary with the official MCP TypeScript SDK
// client (Client + StdioClientTransport), the way real hosts do.
//
//   cd tests/e2e && npm ci && SHELLWIRE_BIN=/path/to/build/shellwire node sdk.test.mjs
//
// SHELLWIRE_BIN falls back to ../../build/shellwire relative to this file. Set
// SHELLWIRE_E2E_STDERR=inherit to see the server's stderr live; otherwise it is captured and
// its tail is appended to the message of a failing test.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = path.resolve(process.env.SHELLWIRE_BIN || path.join(HERE, '..', '..', 'build', 'shellwire'));
// Protocol versions shellwire negotiates (SPEC §1).
const SERVER_VERSIONS = ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'];
const TEST_TIMEOUT = 20_000; // per test; the whole file normally takes ~10 s

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------- fixtures

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shellwire-e2e-'));
const stateDir = path.join(scratch, 'state');
const workDir = path.join(scratch, 'work');
fs.mkdirSync(stateDir, { mode: 0o700 });
fs.mkdirSync(workDir);
// Unique tag put in the server's environment (and so in its children's): lets us find
// processes this server started, and only those, in /proc.
const TAG = `e2e-${process.pid}-${randomBytes(6).toString('hex')}`;

let stderrTail = '';
let client = null;
let transport = null;
let negotiatedVersion = null;
const clientErrors = [];
let toolsSeen = false;

function connectOptions() {
  const stderrMode = process.env.SHELLWIRE_E2E_STDERR === 'inherit' ? 'inherit' : 'pipe';
  return {
    command: BIN,
    args: [],
    cwd: workDir,
    stderr: stderrMode,
    env: {
      PATH: process.env.PATH || '/usr/local/bin:/usr/bin:/bin',
      HOME: process.env.HOME || os.homedir(),
      SHELLWIRE_STATE_DIR: stateDir,
      SHELLWIRE_E2E_TAG: TAG,
    },
  };
}

function needClient() {
  assert.ok(client, 'no connected client (the connect test failed)');
  return client;
}

// Wrap a test body so that a failure carries the tail of the server's stderr.
function withServerLog(fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (err) {
      if (stderrTail && err && typeof err.message === 'string') {
        err.message += `\n--- shellwire stderr (tail) ---\n${stderrTail.slice(-3000)}`;
      }
      throw err;
    }
  };
}

function terminal(args, options) {
  return needClient().callTool({ name: 'terminal', arguments: args }, undefined, options);
}

// A terminal result: content[0].text is the envelope as JSON, equal to structuredContent.
function envelope(result) {
  assert.ok(result.structuredContent && typeof result.structuredContent === 'object',
    `no structuredContent in ${JSON.stringify(result)}`);
  assert.ok(Array.isArray(result.content) && result.content.length >= 1, 'no content');
  assert.equal(result.content[0].type, 'text');
  assert.deepEqual(JSON.parse(result.content[0].text), result.structuredContent,
    'content[0].text is not the JSON of structuredContent');
  return result.structuredContent;
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (err.code === 'ESRCH') return false;
    throw err;
  }
  try { // a zombie is dead for our purposes
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

// Live processes whose environment carries TAG and whose argv is exactly `argv`.
function taggedProcesses(argv) {
  const found = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (cmd[cmd.length - 1] === '') cmd.pop();
      if (cmd.length !== argv.length || path.basename(cmd[0]) !== argv[0]) continue;
      if (!cmd.slice(1).every((a, i) => a === argv[i + 1])) continue;
      const env = fs.readFileSync(`/proc/${name}/environ`, 'utf8').split('\0');
      if (env.includes(`SHELLWIRE_E2E_TAG=${TAG}`) && isAlive(Number(name))) found.push(Number(name));
    } catch {
      // process vanished or not ours to read
    }
  }
  return found;
}

async function waitUntil(predicate, ms, step = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (predicate()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(step);
  }
}

after(async () => {
  if (client) {
    await client.close().catch(() => {});
    client = null;
  }
  fs.rmSync(scratch, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

test('1. connect: server name and negotiated protocol version', { timeout: TEST_TIMEOUT },
  withServerLog(async () => {
    assert.ok(fs.existsSync(BIN), `server binary not found: ${BIN} (set SHELLWIRE_BIN)`);
    transport = new StdioClientTransport(connectOptions());
    // Client.connect() hands the negotiated version to transport.setProtocolVersion() when the
    // transport has one (the stdio transport has none): use that hook to observe it.
    transport.setProtocolVersion = (v) => { negotiatedVersion = v; };
    if (transport.stderr) {
      transport.stderr.setEncoding('utf8');
      transport.stderr.on('data', (d) => { stderrTail = (stderrTail + d).slice(-20000); });
    }
    const c = new Client({ name: 'shellwire-e2e', version: '0.1.0' });
    c.onerror = (err) => clientErrors.push(err);
    await c.connect(transport);
    client = c;

    assert.equal(c.getServerVersion()?.name, 'shellwire');
    assert.ok(c.getServerCapabilities()?.tools, 'server does not declare the tools capability');
    assert.ok(SUPPORTED_PROTOCOL_VERSIONS.includes(negotiatedVersion),
      `negotiated ${negotiatedVersion}, not one the SDK supports`);
    assert.ok(SERVER_VERSIONS.includes(negotiatedVersion),
      `negotiated ${negotiatedVersion}, not one shellwire supports`);
    // The SDK asks for its newest version; shellwire supports it, so it must echo it.
    if (SERVER_VERSIONS.includes(LATEST_PROTOCOL_VERSION)) {
      assert.equal(negotiatedVersion, LATEST_PROTOCOL_VERSION);
    }
    assert.ok(Number.isInteger(transport.pid) && transport.pid > 0, 'no server pid');
    await c.ping();
  }));

test('2. tools/list (paginated) advertises terminal with outputSchema and annotations',
  { timeout: TEST_TIMEOUT }, withServerLog(async () => {
    const c = needClient();
    const tools = [];
    const cursors = new Set();
    let cursor;
    do {
      const page = await c.listTools(cursor === undefined ? {} : { cursor });
      assert.ok(Array.isArray(page.tools), 'tools/list result has no tools array');
      tools.push(...page.tools);
      cursor = page.nextCursor;
      if (cursor !== undefined) {
        assert.ok(!cursors.has(cursor), `pagination loops on cursor ${cursor}`);
        cursors.add(cursor);
      }
    } while (cursor !== undefined);
    toolsSeen = true; // callTool now validates structuredContent against the outputSchema

    const names = tools.map((t) => t.name);
    assert.equal(new Set(names).size, names.length, `duplicate tool names: ${names}`);
    const terminalTool = tools.find((t) => t.name === 'terminal');
    assert.ok(terminalTool, `no terminal tool in ${names}`);
    assert.equal(terminalTool.inputSchema?.type, 'object');
    assert.ok(terminalTool.inputSchema.properties?.command, 'inputSchema lacks command');
    assert.ok(terminalTool.inputSchema.required?.includes('command'), 'command is not required');
    const out = terminalTool.outputSchema;
    assert.equal(out?.type, 'object', 'terminal has no object outputSchema');
    for (const key of ['output', 'exit_code', 'error']) {
      assert.ok(out.properties?.[key], `outputSchema lacks ${key}`);
    }
    assert.ok(terminalTool.annotations && typeof terminalTool.annotations === 'object',
      'terminal has no annotations');
    assert.ok(Object.keys(terminalTool.annotations).length > 0, 'terminal annotations are empty');
  }));

test('3. terminal echo hello: structured result matches text content', { timeout: TEST_TIMEOUT },
  withServerLog(async () => {
    assert.ok(toolsSeen, 'tools/list test did not run, outputSchema validation would be skipped');
    const result = await terminal({ command: 'echo hello' });
    assert.ok(!result.isError, `isError set: ${JSON.stringify(result)}`);
    const env = envelope(result);
    assert.equal(env.output, 'hello');
    assert.equal(env.exit_code, 0);
    assert.equal(env.error, null);
  }));

test('4. state persists: cd in one call, pwd in the next', { timeout: TEST_TIMEOUT },
  withServerLog(async (t) => {
    const dir = fs.realpathSync(fs.mkdtempSync(path.join(scratch, 'cd target ')));
    const quoted = `'${dir.replaceAll("'", "'\\''")}'`;
    const first = envelope(await terminal({ command: `cd ${quoted}` }));
    assert.equal(first.exit_code, 0, `cd failed: ${JSON.stringify(first)}`);
    assert.equal(first.error, null);
    if ('cwd' in first) assert.equal(first.cwd, dir);
    else t.diagnostic('result of cd has no cwd key');
    const second = envelope(await terminal({ command: 'pwd' }));
    assert.equal(second.exit_code, 0);
    assert.equal(second.output, dir);
  }));

test('5. non-zero exit is not a tool error; a bad argument is', { timeout: TEST_TIMEOUT },
  withServerLog(async () => {
    const exited = await terminal({ command: 'echo before; exit 3' });
    assert.ok(!exited.isError, `exit 3 flagged isError: ${JSON.stringify(exited)}`);
    const e1 = envelope(exited);
    assert.equal(e1.exit_code, 3);
    assert.equal(e1.error, null);
    assert.equal(e1.output, 'before');

    const bad = await terminal({ command: 'echo never', timeout: 0 });
    assert.equal(bad.isError, true, `timeout 0 not a tool error: ${JSON.stringify(bad)}`);
    const e2 = envelope(bad);
    assert.equal(typeof e2.error, 'string');
    assert.ok(e2.error.length > 0, 'empty error message');
    assert.match(e2.error, /timeout/i, 'error message does not name the bad argument');
    assert.ok(!e2.output.includes('never'), 'the command ran despite the bad argument');
  }));

test('6. long call reports progress', { timeout: TEST_TIMEOUT }, withServerLog(async (t) => {
  const events = [];
  const result = await terminal(
    { command: 'for i in 1 2 3 4; do echo step$i; sleep 1; done' },
    {
      onprogress: (p) => events.push({ ...p, at: Date.now() }),
      timeout: 30_000,
      resetTimeoutOnProgress: true,
    },
  );
  const env = envelope(result);
  t.diagnostic(`progress: ${JSON.stringify(events.map(({ progress, message }) => ({ progress, message })))}`);
  assert.equal(env.exit_code, 0);
  assert.equal(env.output, 'step1\nstep2\nstep3\nstep4');
  assert.ok(events.length >= 2, `only ${events.length} progress notification(s): ${JSON.stringify(events)}`);
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].progress > events[i - 1].progress,
      `progress not strictly increasing: ${JSON.stringify(events.map((e) => e.progress))}`);
  }
  for (const e of events) {
    assert.equal(typeof e.progress, 'number');
    if (e.message !== undefined) {
      assert.equal(typeof e.message, 'string');
      assert.match(e.message, /step[1-4]/, `progress message is not an output line: ${e.message}`);
    }
  }
}));

test('7. cancellation through AbortSignal kills the command', { timeout: TEST_TIMEOUT },
  withServerLog(async (t) => {
    const errorsBefore = clientErrors.length;
    const controller = new AbortController();
    const started = Date.now();
    const pending = terminal({ command: 'sleep 30' }, { signal: controller.signal, timeout: 60_000 });
    // Make sure the command really started before cancelling it.
    pending.catch(() => {}); // checked below; never an unhandled rejection
    const running = await waitUntil(() => taggedProcesses(['sleep', '30']).length > 0, 5000);
    await sleep(Math.max(0, 500 - (Date.now() - started)));
    controller.abort();
    assert.ok(running, 'sleep 30 never showed up in /proc');
    await assert.rejects(pending, (err) => {
      assert.ok(err instanceof McpError, `not an McpError: ${err}`);
      assert.match(err.message, /abort/i);
      return true;
    });

    const t0 = Date.now();
    const next = envelope(await terminal({ command: 'echo after-cancel' }));
    const elapsed = Date.now() - t0;
    t.diagnostic(`call after cancel: ${elapsed} ms`);
    assert.equal(next.output, 'after-cancel');
    assert.ok(elapsed < 2000, `call after a cancel took ${elapsed} ms`);

    const gone = await waitUntil(() => taggedProcesses(['sleep', '30']).length === 0, 2000);
    assert.ok(gone, `sleep 30 still running after cancel: pids ${taggedProcesses(['sleep', '30'])}`);

    // A cancelled request gets no response (SPEC §1); a late one would surface in the SDK as
    // an "unknown message ID" error.
    await sleep(300);
    const late = clientErrors.slice(errorsBefore).filter((e) => /unknown message id/i.test(String(e)));
    assert.deepEqual(late.map(String), [], 'server answered a cancelled request');
  }));

function processTool(args) {
  return needClient().callTool({ name: 'process', arguments: args }, undefined, { timeout: 30_000 });
}

test('8. background process lifecycle: list, poll, wait, log, kill', { timeout: TEST_TIMEOUT },
  withServerLog(async () => {
    // listTools ran in test 2, so every callTool below also checks structuredContent against
    // the process tool's outputSchema (the SDK throws when it does not match).
    assert.ok(toolsSeen, 'tools/list test did not run, outputSchema validation would be skipped');
    const command = 'for i in 1 2 3; do echo tick$i; sleep 0.2; done';
    const started = envelope(await terminal({ command, background: true }));
    assert.equal(started.error, null, JSON.stringify(started));
    assert.match(started.session_id, /^proc_[0-9a-f]{12}$/);
    assert.ok(Number.isInteger(started.pid) && started.pid > 0, `no pid: ${JSON.stringify(started)}`);
    const id = started.session_id;

    const listed = envelope(await processTool({ action: 'list' }));
    assert.equal(listed.error, null);
    assert.ok(Array.isArray(listed.processes), `no processes array: ${JSON.stringify(listed)}`);
    const entry = listed.processes.find((p) => p.session_id === id);
    assert.ok(entry, `${id} not in the list: ${JSON.stringify(listed)}`);
    assert.equal(entry.command, command);
    assert.equal(entry.pid, started.pid);
    assert.ok(['running', 'exited'].includes(entry.status), `status ${entry.status}`);

    const polled = envelope(await processTool({ action: 'poll', session_id: id }));
    assert.equal(polled.error, null);
    assert.equal(polled.session_id, id);
    assert.ok(['running', 'exited'].includes(polled.status), `status ${polled.status}`);
    assert.equal(typeof polled.output_preview, 'string');

    const waited = envelope(await processTool({ action: 'wait', session_id: id, timeout: 10 }));
    assert.equal(waited.error, null, JSON.stringify(waited));
    assert.equal(waited.status, 'exited');
    assert.equal(waited.exit_code, 0);
    assert.match(waited.output, /tick3/);

    const log = envelope(await processTool({ action: 'log', session_id: id }));
    assert.equal(log.error, null);
    assert.equal(log.total_lines, 3);
    assert.deepEqual(log.output.split('\n').filter(Boolean), ['tick1', 'tick2', 'tick3']);
    assert.equal(typeof log.showing, 'string');
    const page = envelope(await processTool({ action: 'log', session_id: id, offset: 1, limit: 1 }));
    assert.equal(page.output.trim(), 'tick2');
    assert.equal(page.total_lines, 3);

    // After exit, poll reports the exit code; a unique prefix of the id works too.
    const done = envelope(await processTool({ action: 'poll', session_id: id.slice(0, 9) }));
    assert.equal(done.session_id, id);
    assert.equal(done.status, 'exited');
    assert.equal(done.exit_code, 0);
    assert.match(done.output_preview, /tick3/);

    const sleeper = envelope(await terminal({ command: 'sleep 100', background: true }));
    assert.equal(sleeper.error, null, JSON.stringify(sleeper));
    const running = await waitUntil(() => taggedProcesses(['sleep', '100']).length > 0, 5000);
    assert.ok(running, 'sleep 100 never showed up in /proc');
    const stillRunning = envelope(await processTool({ action: 'poll', session_id: sleeper.session_id }));
    assert.equal(stillRunning.status, 'running');
    const killed = envelope(await processTool({ action: 'kill', session_id: sleeper.session_id }));
    assert.equal(killed.error, null, JSON.stringify(killed));
    assert.equal(killed.status, 'killed');
    const gone = await waitUntil(() => taggedProcesses(['sleep', '100']).length === 0, 3000);
    assert.ok(gone, `sleep 100 survived kill: pids ${taggedProcesses(['sleep', '100'])}`);
    const afterKill = envelope(await processTool({ action: 'poll', session_id: sleeper.session_id }));
    assert.equal(afterKill.status, 'exited');
    assert.equal(afterKill.exit_code, -15);
    const again = envelope(await processTool({ action: 'kill', session_id: sleeper.session_id }));
    assert.equal(again.status, 'already_exited');

    const missing = await processTool({ action: 'poll', session_id: 'proc_000000000000' });
    assert.equal(missing.isError, true, `unknown session_id not a tool error: ${JSON.stringify(missing)}`);
    assert.match(envelope(missing).error, /proc_000000000000/);
  }));

test('9. client.close() ends the server process', { timeout: TEST_TIMEOUT },
  withServerLog(async (t) => {
    const c = needClient();
    const pid = transport.pid;
    assert.ok(isAlive(pid), `server ${pid} is not running before close`);
    const t0 = Date.now();
    await c.close();
    client = null;
    const closeMs = Date.now() - t0;
    t.diagnostic(`close() took ${closeMs} ms`);
    const gone = await waitUntil(() => !isAlive(pid), Math.max(0, 3000 - (Date.now() - t0)));
    assert.ok(gone, `server ${pid} still alive 3 s after close()`);
    // The SDK ends stdin, waits 2 s, then sends SIGTERM: finishing sooner means the server
    // exited on stdin EOF by itself, as it should with nothing in flight.
    assert.ok(closeMs < 2000, `close() took ${closeMs} ms: server did not exit on stdin EOF`);
  }));
