// An editor, as far as the tests need one: the reference TypeScript SDK's client drives
// `tiller acp` through each scenario and prints what it saw as one JSON object on stdout.
//
// node client.mjs TILLER WORK, with TILLER_ACP_SDK naming the folder the SDK is installed in.
// WORK holds the workspaces allow/, deny/, cancel/, hunks/, command/, terminal/ and stop/; the
// model scripts are beside this file, but for the last two, which the test writes into WORK.
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import path from "node:path";
import { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";

const [tiller, work] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const sdkMain = "node_modules/@agentclientprotocol/sdk/dist/v1/stable/acp.js";
const acp = await import(pathToFileURL(path.join(process.env.TILLER_ACP_SDK, sdkMain)).href);
const PROMPT = "Capitalise the first and the last line of notes.txt.";

// One connection to a fresh `tiller acp` on the model `script`, with `flags` before `acp`.
// `answer(sessionId, request)` picks the option of each permission request; a session in
// `cancelOn` is cancelled at the first update its predicate there holds for. With `terminal`, the
// editor offers its terminals, which run what they are given as child processes.
async function connect(options, op) {
  const { script = "notes", flags = [], hunks = false, terminal = false } = options;
  const { answer, cancelOn = new Map() } = options;
  const model = path.resolve(here, `${script}.script.json`);
  const child = spawn(tiller, ["--provider", "scripted", "--model", model, ...flags, "acp"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const seen = { updates: {}, permissions: [], reads: [], writes: [], terminals: [] };
  Object.assign(seen, { killed: [], released: [] });
  const terminals = new Map();
  const app = acp
    .client({ name: "tiller-test" })
    .onNotification("session/update", ({ params, agent }) => {
      (seen.updates[params.sessionId] ??= []).push(params.update);
      if (cancelOn.get(params.sessionId)?.(params.update)) {
        cancelOn.delete(params.sessionId);
        agent.notify("session/cancel", { sessionId: params.sessionId });
      }
    })
    .onRequest("session/request_permission", ({ params }) => {
      seen.permissions.push(params);
      return { outcome: { outcome: "selected", optionId: answer(params.sessionId, params) } };
    })
    .onRequest("fs/read_text_file", async ({ params }) => {
      seen.reads.push(params.path);
      return { content: await fs.readFile(params.path, "utf8") };
    })
    .onRequest("fs/write_text_file", async ({ params }) => {
      seen.writes.push(params.path);
      await fs.writeFile(params.path, params.content);
      return {};
    })
    .onRequest("terminal/create", ({ params }) => {
      seen.terminals.push(params);
      const env = { ...process.env, ...Object.fromEntries(params.env.map((e) => [e.name, e.value])) };
      const child = spawn(params.command, params.args, { cwd: params.cwd, env, stdio: "pipe" });
      const t = { child, output: Buffer.alloc(0), truncated: false, limit: params.outputByteLimit };
      const keep = (chunk) => {
        t.output = Buffer.concat([t.output, chunk]);
        if (t.limit != null && t.output.length > t.limit) {
          t.output = t.output.subarray(t.output.length - t.limit);
          t.truncated = true;
        }
      };
      child.stdout.on("data", keep);
      child.stderr.on("data", keep);
      t.exited = new Promise((resolve) =>
        child.on("close", (exitCode, signal) => resolve((t.status = { exitCode, signal }))));
      const terminalId = `terminal-${seen.terminals.length}`;
      terminals.set(terminalId, t);
      return { terminalId };
    })
    .onRequest("terminal/output", ({ params }) => {
      const t = terminals.get(params.terminalId);
      const output = t.output.toString("utf8");
      return { output, truncated: t.truncated, exitStatus: t.status ?? null };
    })
    .onRequest("terminal/wait_for_exit", ({ params }) => terminals.get(params.terminalId).exited)
    .onRequest("terminal/kill", ({ params }) => {
      seen.killed.push(params.terminalId);
      terminals.get(params.terminalId).child.kill();
      return {};
    })
    .onRequest("terminal/release", ({ params }) => {
      seen.released.push(params.terminalId);
      terminals.get(params.terminalId).child.kill();
      terminals.delete(params.terminalId);
      return {};
    });
  const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  const result = await app.connectWith(stream, async (agent) => {
    const init = await agent.request("initialize", {
      protocolVersion: 1,
      clientCapabilities: {
        fs: { readTextFile: true, writeTextFile: true },
        terminal,
        ...(hunks ? { _meta: { "tiller/hunkReview": true } } : {}),
      },
    });
    return op(agent, init);
  });
  child.stdin.end();
  return { ...result, seen, exit: await exited };
}

// A new session in `cwd` and one prompt; `before` sees the session's id before the prompt.
async function prompt(agent, cwd, before = () => {}) {
  const { sessionId } = await agent.request("session/new", { cwd, mcpServers: [] });
  before(sessionId);
  const { stopReason } = await agent.request("session/prompt", {
    sessionId,
    prompt: [{ type: "text", text: PROMPT }],
  });
  return { sessionId, stopReason };
}

const at = (name) => path.join(work, name);
const answers = {};
const cancelOn = new Map();
const streamed = (update) => update.sessionUpdate === "agent_message_chunk";
const inTerminal = (update) => update.content?.[0]?.type === "terminal";
const work1 = await connect({ answer: (id) => answers[id], cancelOn }, async (agent, init) => ({
  init,
  allow: await prompt(agent, at("allow"), (id) => (answers[id] = "allow")),
  deny: await prompt(agent, at("deny"), (id) => (answers[id] = "reject")),
  cancel: await prompt(agent, at("cancel"), (id) => cancelOn.set(id, streamed)),
}));

// An editor started again: the first session, loaded, shows its history.
const loaded = await connect({ answer: () => "reject" }, async (agent) => {
  await agent.request("session/load", {
    sessionId: work1.allow.sessionId,
    cwd: at("allow"),
    mcpServers: [],
  });
  return {};
});

// Hunk by hunk: the first hunk accepted, the second rejected.
let asked = 0;
const hunks = await connect({ hunks: true, answer: () => (asked++ === 0 ? "allow" : "reject") },
  async (agent) => prompt(agent, at("hunks")));

// A command, under a policy that asks before it: rejected, not run.
const command = await connect(
  { script: "command", flags: ["--approval", "untrusted"], answer: () => "reject" },
  async (agent) => prompt(agent, at("command")),
);

// A command run in the editor's terminal, its edit inside the workspace allowed.
const terminal = await connect(
  { script: at("terminal"), terminal: true, answer: () => "allow" },
  async (agent) => prompt(agent, at("terminal")),
);

// A command cancelled while it runs in the terminal.
const stop = await connect(
  { script: at("stop"), terminal: true, answer: () => "allow", cancelOn },
  async (agent) => prompt(agent, at("stop"), (id) => cancelOn.set(id, inTerminal)),
);

console.log(JSON.stringify({ work: work1, loaded, hunks, command, terminal, stop }, null, 1));
