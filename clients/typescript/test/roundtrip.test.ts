import assert from "node:assert/strict";
import { after, test } from "node:test";

import { Code, ConnectError } from "@connectrpc/connect";

import { BlobType, MemobaseClient } from "../src/index.js";

const target = process.env.MEMOBASE_GRPC_TARGET ?? "";
const token = process.env.MEMOBASE_TOKEN ?? "";
// tests/test_polyglot_clients.py runs this test against its own server and sets both.
const skip =
  target && token
    ? false
    : "MEMOBASE_GRPC_TARGET and MEMOBASE_TOKEN are not set: start a server (`make run`) and set " +
      "them (e.g. 127.0.0.1:50051 and memobase-local-root-token)";

const clients: MemobaseClient[] = [];
after(() => clients.forEach((c) => c.close()));

function connect(withToken: string): MemobaseClient {
  const client = new MemobaseClient({ target, token: withToken });
  clients.push(client);
  return client;
}

test("chat round trip", { skip }, async (t) => {
  const client = connect(token);

  const userId = await client.createUser({ name: "Ada", client: "typescript" });
  t.after(() => client.deleteUser(userId));

  const sent = [
    { role: "user", content: "I moved to Lisbon last spring", alias: "Ada" },
    { role: "assistant", content: "How do you like it?" },
  ];
  const blobId = await client.insertChat(userId, sent);

  const blob = await client.getBlob(userId, blobId);
  assert.equal(blob.type, BlobType.CHAT);
  assert.deepEqual(
    blob.messages?.map(({ role, content, alias }) => ({ role, content, alias })),
    [
      { role: "user", content: "I moved to Lisbon last spring", alias: "Ada" },
      { role: "assistant", content: "How do you like it?", alias: undefined },
    ],
  );
  assert.ok(blob.createdAt && Math.abs(Date.now() - blob.createdAt.getTime()) < 3_600_000);

  // The raw stubs are there too, and errors carry gRPC codes.
  const user = await client.users.getUser({ userId });
  assert.equal(user.data?.client, "typescript");
  await assert.rejects(
    client.getBlob(userId, "00000000-0000-4000-8000-000000000000"),
    (err: unknown) => ConnectError.from(err).code === Code.NotFound,
  );
});

test("a wrong token is unauthenticated", { skip }, async () => {
  const client = connect("not-a-valid-token");
  await assert.rejects(
    client.createUser({ name: "Eve" }),
    (err: unknown) => ConnectError.from(err).code === Code.Unauthenticated,
  );
});
