// Creates a user, stores a chat for them and reads it back over gRPC.
//
//	MEMOBASE_GRPC_TARGET=127.0.0.1:50051 MEMOBASE_TOKEN=memobase-local-root-token go run ./example
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	memobase "github.com/memobase-server/clients/go"
	memobasev1 "github.com/memobase-server/clients/go/gen/memobase/v1"
)

func main() {
	target := getenv("MEMOBASE_GRPC_TARGET", "127.0.0.1:50051")
	token := getenv("MEMOBASE_TOKEN", "memobase-local-root-token")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	client, err := memobase.Dial(target, token)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	userID, err := client.CreateUser(ctx, map[string]any{"name": "Ada"})
	if err != nil {
		log.Fatalf("create user: %v", err)
	}
	blobID, err := client.InsertChat(ctx, userID,
		&memobasev1.ChatMessage{Role: "user", Content: "I moved to Lisbon"},
		&memobasev1.ChatMessage{Role: "assistant", Content: "How do you like it?"},
	)
	if err != nil {
		log.Fatalf("insert chat: %v", err)
	}
	blob, err := client.GetBlob(ctx, userID, blobID)
	if err != nil {
		log.Fatalf("get blob: %v", err)
	}
	fmt.Printf("user %s, blob %s (%s)\n", userID, blobID, blob.Type)
	for _, m := range blob.Messages {
		fmt.Printf("  %s: %s\n", m.GetRole(), m.GetContent())
	}
	if err := client.DeleteUser(ctx, userID); err != nil {
		log.Fatalf("delete user: %v", err)
	}
}

func getenv(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
