// A small typed client of memobase-server's gRPC API: Connect's gRPC transport for Node
// (HTTP/2) over the stubs protoc-gen-es generated into ./gen (scripts/gen_clients.sh).
import { create, type JsonObject, type JsonValue, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { BlobService } from "./gen/memobase/v1/blob_pb.js";
import { BlobType, type ChatMessage, ChatMessageSchema } from "./gen/memobase/v1/common_pb.js";
import { EventService } from "./gen/memobase/v1/event_pb.js";
import { ProfileService } from "./gen/memobase/v1/profile_pb.js";
import { ProjectService } from "./gen/memobase/v1/project_pb.js";
import { UserService } from "./gen/memobase/v1/user_pb.js";

export interface MemobaseClientOptions {
  /** "host:port" of the gRPC server (or a full http:// / https:// URL). */
  target: string;
  /** The root token or a project's secret key, sent as "authorization: Bearer <token>". */
  token: string;
  /** Deadline of each call made through the helpers, in milliseconds (default 30 s). */
  timeoutMs?: number;
}

/** A chat message as the helpers take it: role, content and the optional alias / created_at. */
export type ChatMessageInit = MessageInitShape<typeof ChatMessageSchema>;

/** A stored blob as getBlob reads it. */
export interface Blob {
  type: BlobType;
  /** The payload as JSON. */
  data: JsonObject;
  /** The messages of a chat blob (undefined for other types). */
  messages?: ChatMessage[];
  fields: JsonObject;
  createdAt?: Date;
  updatedAt?: Date;
}

/**
 * One HTTP/2 connection to a memobase server (plaintext, as the server speaks it; an
 * https:// target uses TLS). The stub fields give the whole API; the methods cover the common
 * calls. Errors are ConnectError with a gRPC code (Code.NotFound, Code.Unauthenticated, ...).
 */
export class MemobaseClient {
  readonly users: Client<typeof UserService>;
  readonly blobs: Client<typeof BlobService>;
  readonly profiles: Client<typeof ProfileService>;
  readonly events: Client<typeof EventService>;
  readonly projects: Client<typeof ProjectService>;
  private readonly session: Http2SessionManager;
  private readonly timeoutMs: number;

  constructor(options: MemobaseClientOptions) {
    const baseUrl = /^https?:\/\//.test(options.target)
      ? options.target
      : `http://${options.target}`;
    const bearer: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${options.token}`);
      return next(req);
    };
    this.session = new Http2SessionManager(baseUrl);
    const transport = createGrpcTransport({
      baseUrl,
      sessionManager: this.session,
      interceptors: [bearer],
    });
    this.users = createClient(UserService, transport);
    this.blobs = createClient(BlobService, transport);
    this.profiles = createClient(ProfileService, transport);
    this.events = createClient(EventService, transport);
    this.projects = createClient(ProjectService, transport);
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** Creates a user with the given free-form data; returns the generated id. */
  async createUser(data: JsonObject = {}): Promise<string> {
    const reply = await this.users.createUser({ data }, { timeoutMs: this.timeoutMs });
    return reply.id;
  }

  /** Deletes a user and everything of theirs. */
  async deleteUser(userId: string): Promise<void> {
    await this.users.deleteUser({ userId }, { timeoutMs: this.timeoutMs });
  }

  /** Stores a chat blob for the user (queued for the next flush); returns the blob id. */
  async insertChat(userId: string, messages: ChatMessageInit[]): Promise<string> {
    const list: JsonValue[] = messages.map((init) => {
      const m = create(ChatMessageSchema, init);
      const json: JsonObject = { role: m.role, content: m.content };
      if (m.alias !== undefined) json.alias = m.alias;
      if (m.createdAt !== undefined) json.created_at = m.createdAt;
      return json;
    });
    const reply = await this.blobs.insertBlob(
      { userId, blob: { blobType: BlobType.CHAT, blobData: { messages: list } } },
      { timeoutMs: this.timeoutMs },
    );
    return reply.id;
  }

  /** Reads one blob of the user. A missing blob is a ConnectError with Code.NotFound. */
  async getBlob(userId: string, blobId: string): Promise<Blob> {
    const reply = await this.blobs.getBlob({ userId, blobId }, { timeoutMs: this.timeoutMs });
    const data = reply.blobData ?? {};
    return {
      type: reply.blobType,
      data,
      messages: reply.blobType === BlobType.CHAT ? chatMessages(data) : undefined,
      fields: reply.fields ?? {},
      createdAt: reply.createdAt && timestampDate(reply.createdAt),
      updatedAt: reply.updatedAt && timestampDate(reply.updatedAt),
    };
  }

  /** Closes the connection (idle connections do not keep Node alive either way). */
  close(): void {
    this.session.abort();
  }
}

function chatMessages(data: JsonObject): ChatMessage[] {
  const list = Array.isArray(data.messages) ? data.messages : [];
  return list.map((item) => {
    const m = isObject(item) ? item : {};
    return create(ChatMessageSchema, {
      role: String(m.role ?? ""),
      content: String(m.content ?? ""),
      alias: typeof m.alias === "string" ? m.alias : undefined,
      createdAt: typeof m.created_at === "string" ? m.created_at : undefined,
    });
  });
}

function isObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
