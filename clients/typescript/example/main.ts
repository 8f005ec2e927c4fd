// Creates a user, stores a chat for them and reads it back over gRPC.
//   MEMOBASE_GRPC_TARGET=127.0.0.1:50051 MEMOBASE_TOKEN=memobase-local-root-token npm run example
import { BlobType, MemobaseClient } from "../src/index.js";

const client = new MemobaseClient({
  target: process.env.MEMOBASE_GRPC_TARGET || "127.0.0.1:50051",
  token: process.env.MEMOBASE_TOKEN || "memobase-local-root-token",
});
try {
  const userId = await client.createUser({ name: "Ada" });
  const blobId = await client.insertChat(userId, [
    { role: "user", content: "I moved to Lisbon" },
    { role: "assistant", content: "How do you like it?" },
  ]);
  const blob = await client.getBlob(userId, blobId);
  console.log(`user ${userId}, blob ${blobId} (${BlobType[blob.type]})`);
  for (const m of blob.messages ?? []) console.log(`  ${m.role}: ${m.content}`);
  await client.deleteUser(userId);
} finally {
  client.close();
}
