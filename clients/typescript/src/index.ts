// The typed client and every generated type and service of memobase.v1.
export * from "./client.js";
export * from "./gen/memobase/v1/blob_pb.js";
export * from "./gen/memobase/v1/common_pb.js";
export * from "./gen/memobase/v1/event_pb.js";
export * from "./gen/memobase/v1/profile_pb.js";
export * from "./gen/memobase/v1/project_pb.js";
export * from "./gen/memobase/v1/user_pb.js";
