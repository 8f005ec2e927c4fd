// Package memobase is a small typed client of memobase-server's gRPC API.
//
// The generated stubs of every service are in the gen/memobase/v1 package (buf generate, from
// proto/memobase/v1); Client wraps one connection, attaches the Bearer token to every call and
// offers typed helpers for the common calls. Errors are gRPC status errors: use
// status.Code(err) (codes.NotFound, codes.Unauthenticated, ...).
package memobase

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	memobasev1 "github.com/memobase-server/clients/go/gen/memobase/v1"
)

// Client holds one gRPC connection to a memobase server. The stub fields give the whole API;
// the methods cover the common calls with plain Go types. Safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn

	Users    memobasev1.UserServiceClient
	Blobs    memobasev1.BlobServiceClient
	Profiles memobasev1.ProfileServiceClient
	Events   memobasev1.EventServiceClient
	Projects memobasev1.ProjectServiceClient
}

// Dial connects to target ("host:port") and sends "authorization: Bearer <token>" with every
// call. The connection is plaintext (h2c), which is what the server speaks; for a server behind
// TLS, pass grpc.WithTransportCredentials(credentials.NewTLS(nil)) in opts (later options win).
// Like grpc.NewClient, Dial does not wait for the server: the first call connects.
func Dial(target, token string, opts ...grpc.DialOption) (*Client, error) {
	if token == "" {
		return nil, fmt.Errorf("memobase: empty token")
	}
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)),
	}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, fmt.Errorf("memobase: dial %s: %w", target, err)
	}
	return &Client{
		conn:     conn,
		Users:    memobasev1.NewUserServiceClient(conn),
		Blobs:    memobasev1.NewBlobServiceClient(conn),
		Profiles: memobasev1.NewProfileServiceClient(conn),
		Events:   memobasev1.NewEventServiceClient(conn),
		Projects: memobasev1.NewProjectServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// CreateUser creates a user with the given free-form data (JSON-like values: nil, bool,
// numbers, string, []any, map[string]any) and returns its generated id.
func (c *Client) CreateUser(ctx context.Context, data map[string]any) (string, error) {
	s, err := structpb.NewStruct(data)
	if err != nil {
		return "", fmt.Errorf("memobase: user data: %w", err)
	}
	reply, err := c.Users.CreateUser(ctx, &memobasev1.CreateUserRequest{Data: s})
	if err != nil {
		return "", err
	}
	return reply.GetId(), nil
}

// DeleteUser deletes a user and everything of theirs.
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	_, err := c.Users.DeleteUser(ctx, &memobasev1.DeleteUserRequest{UserId: userID})
	return err
}

// InsertChat stores a chat blob for the user (and queues it for the next flush) and returns
// the blob id. An acknowledged insert is durable.
func (c *Client) InsertChat(ctx context.Context, userID string, messages ...*memobasev1.ChatMessage) (string, error) {
	list := make([]any, 0, len(messages))
	for _, m := range messages {
		msg := map[string]any{"role": m.GetRole(), "content": m.GetContent()}
		if m.Alias != nil {
			msg["alias"] = m.GetAlias()
		}
		if m.CreatedAt != nil {
			msg["created_at"] = m.GetCreatedAt()
		}
		list = append(list, msg)
	}
	data, err := structpb.NewStruct(map[string]any{"messages": list})
	if err != nil {
		return "", fmt.Errorf("memobase: chat: %w", err)
	}
	reply, err := c.Blobs.InsertBlob(ctx, &memobasev1.InsertBlobRequest{
		UserId: userID,
		Blob:   &memobasev1.BlobInput{BlobType: memobasev1.BlobType_BLOB_TYPE_CHAT, BlobData: data},
	})
	if err != nil {
		return "", err
	}
	return reply.GetId(), nil
}

// Blob is a stored blob as GetBlob reads it.
type Blob struct {
	Type memobasev1.BlobType
	// Data is the payload as JSON-like values.
	Data map[string]any
	// Messages are the messages of a chat blob (nil for other types).
	Messages  []*memobasev1.ChatMessage
	Fields    map[string]any
	CreatedAt time.Time
	UpdatedAt time.Time
}

// GetBlob reads one blob of the user. A missing blob is a codes.NotFound error.
func (c *Client) GetBlob(ctx context.Context, userID, blobID string) (*Blob, error) {
	reply, err := c.Blobs.GetBlob(ctx, &memobasev1.GetBlobRequest{UserId: userID, BlobId: blobID})
	if err != nil {
		return nil, err
	}
	blob := &Blob{
		Type:      reply.GetBlobType(),
		Data:      reply.GetBlobData().AsMap(),
		Fields:    reply.GetFields().AsMap(),
		CreatedAt: reply.GetCreatedAt().AsTime(),
		UpdatedAt: reply.GetUpdatedAt().AsTime(),
	}
	if blob.Type == memobasev1.BlobType_BLOB_TYPE_CHAT {
		blob.Messages = chatMessages(reply.GetBlobData())
	}
	return blob, nil
}

func chatMessages(data *structpb.Struct) []*memobasev1.ChatMessage {
	var out []*memobasev1.ChatMessage
	for _, v := range data.GetFields()["messages"].GetListValue().GetValues() {
		f := v.GetStructValue().GetFields()
		m := &memobasev1.ChatMessage{
			Role:    f["role"].GetStringValue(),
			Content: f["content"].GetStringValue(),
		}
		if a, ok := f["alias"]; ok && a.GetKind() != nil {
			if _, isNull := a.GetKind().(*structpb.Value_NullValue); !isNull {
				s := a.GetStringValue()
				m.Alias = &s
			}
		}
		if t, ok := f["created_at"]; ok && t.GetKind() != nil {
			if _, isNull := t.GetKind().(*structpb.Value_NullValue); !isNull {
				s := t.GetStringValue()
				m.CreatedAt = &s
			}
		}
		out = append(out, m)
	}
	return out
}

// bearer sends the token as "authorization: Bearer <token>" metadata. It does not require
// transport security, because the server itself speaks plaintext gRPC.
type bearer string

var _ credentials.PerRPCCredentials = bearer("")

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
