#!/usr/bin/env node
// A small command-line and interactive MCP client for shellwire, built on the official MCP
// TypeScript SDK (Client + StdioClientTransport). Node >= 18.
//
//   node shellwire-client.mjs [--server PATH] [-- SERVER_ARGS...] call TOOL 'JSON'
//   node shellwire-client.mjs [--server PATH] [-- SERVER_ARGS...] list [--json]
//   node shellwire-client.mjs [--server PATH] [-- SERVER_ARGS...]       # interactive prompt
//
// `call` prints the structured result as indented JSON; exit status 0, or 1 when the result
// has isError set; 2 for a JSON-RPC error (unknown tool, ...) or a usage error.
// The server path defaults to $SHELLWIRE_BIN, else ../../build/shellwire next to this file.
// Progress and server notices go to stderr.

import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import {
  LoggingMessageNotificationSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLIENT_INFO = { name: 'shellwire-client', version: '0.1.0' };
const COMMANDS = new Set(['call', 'list', 'interactive']);
// Longest a request may take: the longest foreground command (600 s) plus slack. Progress
// notifications restart the clock.
const REQUEST_TIMEOUT_MS = 660_000;

const USAGE = `usage: shellwire-client.mjs [--server PATH] [-- SERVER_ARGS...] [COMMAND]

commands:
  call TOOL JSON    call a tool once, print its structured result (exit 1 if isError)
  list [--json]     list the server's tools
  (none)            interactive prompt; type 'help' there

The server defaults to $SHELLWIRE_BIN, else ../../build/shellwire next to this script.
Arguments after '--' go to the server, up to the command word, e.g.
  shellwire-client.mjs -- --timeout 30 call terminal '{"command":"uname -a"}'`;

const INTERACTIVE_HELP = `  terminal CMD...              run CMD in the foreground (rest of the line is the command)
  bg CMD...                    run CMD in the background (terminal with background: true)
  process ACTION [ID] [k=v]    e.g. process list | process wait proc_1a2b timeout=5 |
                               process log proc_1a2b offset=0 limit=20 | process kill proc_1a2b
  process submit|write ID TEXT send TEXT to a pty process (submit adds a newline)
  call TOOL JSON               call any tool with JSON arguments
  tools                        list the tools
  help                         this text
  quit                         leave (also exit or end of input)
Values in k=v are JSON when they parse as JSON, else strings. Ctrl-C cancels a running call.`;

class UsageError extends Error {}

function defaultServer() {
  return process.env.SHELLWIRE_BIN || path.join(HERE, '..', '..', 'build', 'shellwire');
}

// argv -> { server, serverArgs, words }. Server arguments follow `--` up to the first command
// word; a `--` after the command words passes everything behind it to the server as well.
export function parseArgv(argv) {
  let server = null;
  const serverArgs = [];
  let i = 0;
  while (i < argv.length) {
    const tok = argv[i];
    if (tok === '--server') {
      if (i + 1 >= argv.length) throw new UsageError('--server needs a path');
      server = argv[i + 1];
      i += 2;
    } else if (tok.startsWith('--server=')) {
      server = tok.slice('--server='.length);
      i += 1;
    } else if (tok === '-h' || tok === '--help') {
      return { server, serverArgs, words: ['help'] };
    } else if (tok === '--') {
      i += 1;
      while (i < argv.length && !COMMANDS.has(argv[i])) serverArgs.push(argv[i++]);
    } else {
      break;
    }
  }
  let words = argv.slice(i);
  const cut = words.indexOf('--');
  if (cut >= 0) {
    serverArgs.push(...words.slice(cut + 1));
    words = words.slice(0, cut);
  }
  return { server, serverArgs, words };
}

function printJson(value) {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function showProgress(p) {
  const total = p.total !== undefined ? `/${p.total}` : '';
  process.stderr.write(`[progress ${p.progress}${total}] ${p.message ?? ''}\n`);
}

function showNotice(params) {
  const data = typeof params.data === 'string' ? params.data : JSON.stringify(params.data);
  process.stderr.write(`[${params.level}] ${params.logger ?? 'server'}: ${data}\n`);
}

function formatTools(tools) {
  const lines = [];
  for (const tool of tools) {
    const title = tool.title || tool.annotations?.title || '';
    lines.push(title ? `${tool.name} - ${title}` : tool.name);
    const required = new Set(tool.inputSchema?.required ?? []);
    const params = Object.keys(tool.inputSchema?.properties ?? {})
      .map((p) => (required.has(p) ? `${p}*` : p));
    if (params.length) lines.push(`    arguments: ${params.join(' ')}`);
  }
  return lines.join('\n');
}

// The structured envelope of a tool result; falls back to the JSON in the text content.
function structured(result) {
  if (result.structuredContent && typeof result.structuredContent === 'object') {
    return result.structuredContent;
  }
  const text = (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('');
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object') return parsed;
  } catch {
    // not JSON
  }
  return { output: text, error: result.isError ? text : null };
}

// Human form of a terminal result: its output, then a status line and the other keys.
function printTerminal(env) {
  if (env.output) process.stdout.write(`${env.output}\n`);
  const parts = [`exit ${env.exit_code}`];
  if (Number.isInteger(env.duration_ms)) parts.push(`${env.duration_ms} ms`);
  process.stdout.write(`[${parts.join(', ')}]\n`);
  for (const [key, value] of Object.entries(env)) {
    if (['output', 'exit_code', 'duration_ms'].includes(key) || value === null) continue;
    process.stdout.write(`  ${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
  }
}

function parseJsonArgs(text) {
  let value;
  try {
    value = text.trim() ? JSON.parse(text) : {};
  } catch (err) {
    throw new UsageError(`arguments are not valid JSON: ${err.message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError('arguments must be a JSON object');
  }
  return value;
}

function parseKv(words) {
  const out = {};
  for (const word of words) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected key=value, got '${word}'`);
    const raw = word.slice(eq + 1);
    try {
      out[word.slice(0, eq)] = JSON.parse(raw);
    } catch {
      out[word.slice(0, eq)] = raw;
    }
  }
  return out;
}

function processArgs(rest) {
  const words = rest.split(/\s+/).filter(Boolean);
  if (!words.length) {
    throw new UsageError('process needs an action: list, poll, log, wait, kill, write, submit, close');
  }
  const action = words[0];
  const args = { action };
  if (action === 'write' || action === 'submit') {
    const m = /^\S+\s+(\S+)(?:\s(.*))?$/s.exec(rest);
    if (!m) throw new UsageError(`usage: process ${action} SESSION_ID TEXT`);
    args.session_id = m[1];
    args.data = m[2] ?? '';
    return args;
  }
  const more = words.slice(1);
  if (more.length && !more[0].includes('=')) args.session_id = more.shift();
  return Object.assign(args, parseKv(more));
}

async function connect(server, serverArgs) {
  const transport = new StdioClientTransport({
    command: server,
    args: serverArgs,
    // The server gets our whole environment (SHELLWIRE_STATE_DIR, TERMINAL_*, ...); it keeps
    // its own secrets away from the commands it runs.
    env: { ...process.env },
    stderr: 'inherit',
  });
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => showNotice(n.params));
  await client.connect(transport);
  return client;
}

async function listTools(client) {
  // Listing the tools also makes the SDK validate structuredContent against each outputSchema.
  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    tools.push(...page.tools);
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return tools;
}

function callTool(client, name, args, signal) {
  return client.callTool({ name, arguments: args }, undefined, {
    onprogress: showProgress,
    timeout: REQUEST_TIMEOUT_MS,
    resetTimeoutOnProgress: true,
    signal,
  });
}

function describeError(err) {
  // McpError messages already read "MCP error <code>: ...".
  if (err instanceof McpError) return `error: ${err.message}`;
  return `error: ${err?.message ?? err}`;
}

async function interactive(client) {
  const tty = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const rl = readline.createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: tty,
    prompt: 'shellwire> ',
  });
  if (tty) {
    const info = client.getServerVersion() ?? {};
    process.stderr.write(`connected to ${info.name ?? 'server'} ${info.version ?? ''}; type help\n`);
  }
  let current = null; // AbortController of the call in flight
  let quitting = false;
  let chain = Promise.resolve();

  rl.on('SIGINT', () => {
    if (current) {
      current.abort();
    } else {
      rl.close();
    }
  });

  async function handle(line) {
    const text = line.trim();
    if (quitting || !text || text.startsWith('#')) return;
    const sp = text.search(/\s/);
    const cmd = sp < 0 ? text : text.slice(0, sp);
    const rest = sp < 0 ? '' : text.slice(sp + 1).trim();
    current = new AbortController();
    try {
      switch (cmd) {
        case 'quit':
        case 'exit':
          quitting = true;
          rl.close();
          return;
        case 'help':
        case '?':
          process.stdout.write(`${INTERACTIVE_HELP}\n`);
          break;
        case 'tools':
        case 'list':
          process.stdout.write(`${formatTools(await listTools(client))}\n`);
          break;
        case 'terminal':
        case 'bg':
        case 'background': {
          if (!rest) throw new UsageError(`usage: ${cmd} COMMAND`);
          const args = { command: rest };
          if (cmd !== 'terminal') args.background = true;
          printTerminal(structured(await callTool(client, 'terminal', args, current.signal)));
          break;
        }
        case 'process':
          printJson(structured(await callTool(client, 'process', processArgs(rest), current.signal)));
          break;
        case 'call': {
          const m = /^(\S+)\s*(.*)$/s.exec(rest);
          if (!m) throw new UsageError('usage: call TOOL JSON');
          printJson(structured(await callTool(client, m[1], parseJsonArgs(m[2]), current.signal)));
          break;
        }
        default:
          throw new UsageError(`unknown command '${cmd}'; type help`);
      }
    } catch (err) {
      process.stderr.write(current.signal.aborted ? '[cancelled]\n' : `${describeError(err)}\n`);
    } finally {
      current = null;
    }
  }

  // Lines are handled one at a time, in order, even when stdin delivers them all at once.
  rl.on('line', (line) => {
    chain = chain.then(() => handle(line)).then(() => {
      if (tty && !quitting) rl.prompt();
    });
  });
  if (tty) rl.prompt();
  // End of input (or quit) closes readline; lines already read still run, in order.
  await new Promise((resolve) => rl.once('close', resolve));
  await chain;
  return 0;
}

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgv(argv);
  } catch (err) {
    process.stderr.write(`error: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  const { serverArgs, words } = parsed;
  if (words[0] === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const command = words[0] ?? 'interactive';
  if (!COMMANDS.has(command)) {
    process.stderr.write(`error: unknown command '${command}'\n${USAGE}\n`);
    return 2;
  }
  let callArgs = null;
  if (command === 'call') {
    if (words.length < 2 || words.length > 3) {
      process.stderr.write("usage: shellwire-client.mjs call TOOL 'JSON'\n");
      return 2;
    }
    try {
      callArgs = parseJsonArgs(words[2] ?? '');
    } catch (err) {
      process.stderr.write(`error: ${err.message}\n`);
      return 2;
    }
  }

  const server = parsed.server || defaultServer();
  let client;
  try {
    client = await connect(server, serverArgs);
  } catch (err) {
    process.stderr.write(`error: cannot start ${server}: ${err?.message ?? err}\n`);
    return 2;
  }
  try {
    const tools = await listTools(client);
    if (command === 'list') {
      if (words.includes('--json')) printJson(tools);
      else process.stdout.write(`${formatTools(tools)}\n`);
      return 0;
    }
    if (command === 'call') {
      const result = await callTool(client, words[1], callArgs);
      if (result.structuredContent && typeof result.structuredContent === 'object') {
        printJson(result.structuredContent);
      } else {
        for (const item of result.content ?? []) {
          process.stdout.write(`${item.type === 'text' ? item.text : JSON.stringify(item)}\n`);
        }
      }
      return result.isError ? 1 : 0;
    }
    return await interactive(client);
  } catch (err) {
    process.stderr.write(`${describeError(err)}\n`);
    return 2;
  } finally {
    await client.close().catch(() => {});
  }
}

// Run unless imported (npm's bin link points here through a symlink, hence realpath).
const isMain = process.argv[1]
  && fs.realpathSync(path.resolve(process.argv[1])) === fs.realpathSync(fileURLToPath(import.meta.url));
if (isMain) {
  process.exitCode = await main(process.argv.slice(2));
}
