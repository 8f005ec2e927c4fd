package memobase_test

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	memobase "github.com/memobase-server/clients/go"
	memobasev1 "github.com/memobase-server/clients/go/gen/memobase/v1"
)

// server returns the server named by MEMOBASE_GRPC_TARGET and MEMOBASE_TOKEN, or skips the
// test when they are unset (tests/test_polyglot_clients.py sets both).
func server(t *testing.T) (target, token string) {
	t.Helper()
	target, token = os.Getenv("MEMOBASE_GRPC_TARGET"), os.Getenv("MEMOBASE_TOKEN")
	if target == "" || token == "" {
		t.Skip("MEMOBASE_GRPC_TARGET and MEMOBASE_TOKEN are not set: start a server (`make run`) " +
			"and set them (e.g. 127.0.0.1:50051 and memobase-local-root-token); " +
			"tests/test_polyglot_clients.py runs this test against its own server")
	}
	return target, token
}

// dial connects with the given token; the context ends with the test.
func dial(t *testing.T, target, token string) (*memobase.Client, context.Context) {
	t.Helper()
	client, err := memobase.Dial(target, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return client, ctx
}

func TestChatRoundTrip(t *testing.T) {
	target, token := server(t)
	client, ctx := dial(t, target, token)

	userID, err := client.CreateUser(ctx, map[string]any{"name": "Ada", "client": "go"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	t.Cleanup(func() { _ = client.DeleteUser(context.Background(), userID) })

	alias := "Ada"
	sent := []*memobasev1.ChatMessage{
		{Role: "user", Content: "I moved to Lisbon last spring", Alias: &alias},
		{Role: "assistant", Content: "How do you like it?"},
	}
	blobID, err := client.InsertChat(ctx, userID, sent...)
	if err != nil {
		t.Fatalf("InsertChat: %v", err)
	}

	blob, err := client.GetBlob(ctx, userID, blobID)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	if blob.Type != memobasev1.BlobType_BLOB_TYPE_CHAT {
		t.Errorf("blob type = %v, want BLOB_TYPE_CHAT", blob.Type)
	}
	if len(blob.Messages) != len(sent) {
		t.Fatalf("read %d messages back, want %d: %v", len(blob.Messages), len(sent), blob.Data)
	}
	for i := range sent {
		if !proto.Equal(blob.Messages[i], sent[i]) {
			t.Errorf("message %d = %v, want %v", i, blob.Messages[i], sent[i])
		}
	}
	if blob.CreatedAt.IsZero() || time.Since(blob.CreatedAt) > time.Hour {
		t.Errorf("created_at = %v, want about now", blob.CreatedAt)
	}

	// The raw stubs are there too, and errors are gRPC statuses.
	user, err := client.Users.GetUser(ctx, &memobasev1.GetUserRequest{UserId: userID})
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got := user.GetData().AsMap()["client"]; got != "go" {
		t.Errorf("user data client = %v, want go", got)
	}
	_, err = client.GetBlob(ctx, userID, "00000000-0000-4000-8000-000000000000")
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetBlob of a missing blob: %v, want NotFound", err)
	}
}

func TestWrongTokenIsUnauthenticated(t *testing.T) {
	target, _ := server(t)
	bad, ctx := dial(t, target, "not-a-valid-token")
	_, err := bad.CreateUser(ctx, map[string]any{"name": "Eve"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("CreateUser with a wrong token: %v, want Unauthenticated", err)
	}
}
