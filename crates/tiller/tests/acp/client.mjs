// An editor, as far as the tests need one: the reference TypeScript SDK's client drives
// `tiller acp` through each scenario and prints what it saw as one JSON object on stdout.
//
// node client.mjs TILLER WORK, with TILLER_ACP_SDK naming the folder the SDK is installed in.
// WORK holds the workspaces allow/, deny/, cancel/, hunks/ and command/; the model scripts are
// beside this file.
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
// `answer(sessionId, request)` picks the option of each permission request; sessions in
// `cancelOn` are cancelled at their first streamed text.
async function connect(options, op) {
  const { script = "notes", flags = [], hunks = false, answer, cancelOn = new Set() } = options;
  const model = path.join(here, `${script}.script.json`);
  const child = spawn(tiller, ["--provider", "scripted", "--model", model, ...flags, "acp"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  const seen = { updates: {}, permissions: [], reads: [], writes: [] };
  const app = acp
    .client({ name: "tiller-test" })
    .onNotification("session/update", ({ params, agent }) => {
      (seen.updates[params.sessionId] ??= []).push(params.update);
      if (cancelOn.has(params.sessionId) && params.update.sessionUpdate === "agent_message_chunk") {
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
    });
  const stream = acp.ndJsonStream(Writable.toWeb(child.stdin), Readable.toWeb(child.stdout));
  const result = await app.connectWith(stream, async (agent) => {
    const init = await agent.request("initialize", {
      protocolVersion: 1,
      clientCapabilities: {
        fs: { readTextFile: true, writeTextFile: true },
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
const cancelOn = new Set();
const work1 = await connect({ answer: (id) => answers[id], cancelOn }, async (agent, init) => ({
  init,
  allow: await prompt(agent, at("allow"), (id) => (answers[id] = "allow")),
  deny: await prompt(agent, at("deny"), (id) => (answers[id] = "reject")),
  cancel: await prompt(agent, at("cancel"), (id) => cancelOn.add(id)),
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

console.log(JSON.stringify({ work: work1, loaded, hunks, command }, null, 1));
