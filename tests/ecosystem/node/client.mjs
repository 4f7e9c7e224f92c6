// The official openai npm SDK against an agentctl gateway. The test passes the gateway
// URL and the identity header; this prints one JSON object describing what the SDK saw.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.GATEWAY_URL,
  apiKey: "sk-node-client",
  defaultHeaders: { "X-Agent-Identity": process.env.AGENT_IDENTITY },
  maxRetries: 2,
});
const messages = [{ role: "user", content: "tell me three things about the sea" }];
const out = {};

const chat = await client.chat.completions.create({ model: "gpt-4o-mini", messages }).withResponse();
out.chat = {
  request_id: chat.response.headers.get("x-request-id"),
  agent: chat.response.headers.get("x-agentctl-agent"),
  usage: chat.data.usage,
  content: chat.data.choices[0].message.content,
};

const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true });
let text = "";
let usageChunks = 0;
for await (const chunk of stream) {
  if (chunk.usage) usageChunks += 1;
  for (const choice of chunk.choices) text += choice.delta?.content ?? "";
}
out.stream = { text, usage_chunks: usageChunks };

const emb = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a b c", "d e"] });
out.embeddings = { count: emb.data.length, usage: emb.usage };

const resp = await client.responses.create({ model: "gpt-4o-mini", input: "one two three" });
out.responses = { usage: resp.usage, text: resp.output_text };

const retried = await client.chat.completions.create(
  { model: "gpt-4o-mini", messages },
  { headers: { "x-sim-status": "429", "x-sim-fail-first": "1", "x-sim-key": process.env.SIM_KEY, "x-sim-retry-after-ms": "20" } },
);
out.retried = { usage: retried.usage };

try {
  await client.chat.completions.create({ model: "gpt-4o-mini", messages }, { headers: { "X-Agent-Identity": "name=Not Valid" } });
  out.refused = null;
} catch (err) {
  out.refused = { status: err.status, code: err.code, type: err.constructor.name };
}

process.stdout.write(JSON.stringify(out) + "\n");
