package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHTTPSMSSenderSignsAndPosts(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	at := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	phone := randomPhone()
	var got struct {
		method, contentType, signature, timestamp string
		body                                      []byte
	}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.contentType = r.Method, r.Header.Get("Content-Type")
		got.signature, got.timestamp = r.Header.Get(SignatureHeader), r.Header.Get(TimestampHeader)
		got.body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer gw.Close()

	s := HTTPSMSSender{URL: gw.URL + "/send", Secret: secret, now: func() time.Time { return at }}
	if err := s.Send(context.Background(), Message{Channel: ChannelSMS, To: phone, Text: "验证码 123456"}); err != nil {
		t.Fatal(err)
	}
	if got.method != http.MethodPost || got.contentType != "application/json" {
		t.Errorf("request %s %s, want POST application/json", got.method, got.contentType)
	}
	var body map[string]string
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if len(body) != 2 || body["phone"] != phone || body["text"] != "验证码 123456" {
		t.Errorf("body = %s, want exactly phone and text", got.body)
	}
	if want := SignSMSBody(secret, got.body); got.signature != want || !strings.HasPrefix(got.signature, "sha256=") {
		t.Errorf("signature %q, want %q", got.signature, want)
	}
	if got.timestamp != strconv.FormatInt(at.Unix(), 10) {
		t.Errorf("timestamp %q, want %d", got.timestamp, at.Unix())
	}
}

func TestHTTPSMSSenderRefusals(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		channel string
		wantErr bool
	}{
		{"accepted", http.StatusOK, ChannelSMS, false},
		{"no content", http.StatusNoContent, ChannelSMS, false},
		{"gateway error", http.StatusBadGateway, ChannelSMS, true},
		{"bad request", http.StatusBadRequest, ChannelSMS, true},
		{"redirect is not success", http.StatusNotModified, ChannelSMS, true},
		{"email channel", http.StatusOK, ChannelEmail, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.status) }))
			defer gw.Close()
			s := HTTPSMSSender{URL: gw.URL, Secret: []byte("k")}
			err := s.Send(context.Background(), Message{Channel: tc.channel, To: randomPhone(), Text: "x"})
			if (err != nil) != tc.wantErr {
				t.Errorf("Send = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestLogSenderWritesMessage(t *testing.T) {
	var buf bytes.Buffer
	s := LogSender{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	phone := randomPhone()
	if err := s.Send(context.Background(), Message{Channel: ChannelSMS, To: phone, Text: "code 654321"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"level=INFO", "channel=sms", "to=" + phone, "code 654321", "development only"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}

func TestSMTPSenderComposeRefusesHeaderInjection(t *testing.T) {
	s := SMTPSender{From: "sso@example.org"}
	if _, err := s.compose(Message{Channel: ChannelEmail, To: "a@example.org\r\nBcc: b@example.org", Text: "x"}); err == nil {
		t.Error("an address with CRLF was accepted")
	}
	body, err := s.compose(Message{Channel: ChannelEmail, To: "a@example.org", Text: "line one\nline two"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("To: a@example.org\r\n")) || !bytes.Contains(body, []byte("\r\n\r\nline one\r\nline two\r\n")) {
		t.Errorf("message = %q", body)
	}
}
