package users

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Channels a Message travels by.
const (
	ChannelSMS   = "sms"
	ChannelEmail = "email"
)

// Message is one text to one person: a one-time code or a notice.
type Message struct {
	Channel string // ChannelSMS or ChannelEmail
	To      string // normalized phone number or email address
	Text    string `json:"-"` // may hold a one-time code: never log it (LogSender excepted)
}

// Sender delivers messages: an SMS gateway, a mail server, or the log in
// development. Implementations must be safe for concurrent use.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// LogSender writes every message, code included, to the logger at info
// level instead of delivering it.
//
// DEVELOPMENT ONLY. This is the one place in the server where a one-time
// code is ever written to a log, and only because no real message is
// sent: anyone who can read the logs can then register or reset the
// password of any phone number. Production must configure the http SMS
// sender and the smtp email sender.
type LogSender struct {
	Log *slog.Logger
}

// Send logs m, text and all.
func (s LogSender) Send(ctx context.Context, m Message) error {
	s.Log.InfoContext(ctx, "one-time message (log sender, development only: not delivered)",
		"channel", m.Channel, "to", m.To, "text", m.Text)
	return nil
}

// SMTPSender sends email through a mail server with net/smtp. It upgrades
// the connection with STARTTLS whenever the server offers it, and signs in
// (PLAIN) only over TLS, since net/smtp refuses to send a password in clear
// except to localhost.
type SMTPSender struct {
	Host     string
	Port     int
	Username string // empty: no authentication
	Password string `json:"-"`
	From     string // the sender address
	// Timeout bounds connecting and the whole conversation; default 10s.
	Timeout time.Duration
}

// Send mails m.Text to m.To as a plain-text message.
func (s SMTPSender) Send(ctx context.Context, m Message) error {
	if m.Channel != ChannelEmail {
		return fmt.Errorf("smtp sender: cannot send by %q", m.Channel)
	}
	body, err := s.compose(m)
	if err != nil {
		return err
	}
	if err := s.deliver(ctx, m.To, body); err != nil {
		return fmt.Errorf("smtp sender %s: %w", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)), err)
	}
	return nil
}

// compose builds the RFC 5322 message. Addresses were validated, but they
// are checked again so that no header injection can pass.
func (s SMTPSender) compose(m Message) ([]byte, error) {
	for _, a := range []string{s.From, m.To} {
		if _, err := mail.ParseAddress(a); err != nil || strings.ContainsAny(a, "\r\n") {
			return nil, fmt.Errorf("smtp sender: invalid address %q", a)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", s.From, m.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.BEncoding.Encode("utf-8", "验证码 / Verification code"))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(strings.ReplaceAll(m.Text, "\n", "\r\n"))
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// deliver runs one SMTP conversation.
func (s SMTPSender) deliver(ctx context.Context, to string, body []byte) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dialer := net.Dialer{Timeout: timeout}
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: s.Host, MinVersion: tls.VersionTLS12}); err != nil {
			return err
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, s.Host)); err != nil {
			return err
		}
	}
	if err := c.Mail(s.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// httpSMSTimeout bounds one request to the SMS gateway.
const httpSMSTimeout = 5 * time.Second

// Headers of a request to the SMS gateway.
const (
	SignatureHeader = "X-SSO-Signature" // "sha256=" + hex HMAC-SHA-256 of the body under the shared secret
	TimestampHeader = "X-SSO-Timestamp" // Unix seconds when the request was made
)

// HTTPSMSSender hands text messages to an SMS gateway of the operator's
// choosing: it POSTs the JSON body {"phone": "...", "text": "..."} to URL,
// signed with a shared secret in X-SSO-Signature, with the time in
// X-SSO-Timestamp. Any 2xx answer means accepted; anything else is an error.
type HTTPSMSSender struct {
	URL    string
	Secret []byte `json:"-"`
	// Client defaults to one with a 5-second timeout.
	Client *http.Client
	now    func() time.Time // replaced by tests
}

// smsRequest is the documented body of a request to the SMS gateway.
type smsRequest struct {
	Phone string `json:"phone"`
	Text  string `json:"text"`
}

// SignSMSBody is the X-SSO-Signature value of body under secret, for
// gateways (and tests) to check a request.
func SignSMSBody(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Send posts m to the gateway.
func (s HTTPSMSSender) Send(ctx context.Context, m Message) error {
	if m.Channel != ChannelSMS {
		return fmt.Errorf("http sms sender: cannot send by %q", m.Channel)
	}
	body, err := json.Marshal(smsRequest{Phone: m.To, Text: m.Text})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, httpSMSTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("http sms sender: %w", err)
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, SignSMSBody(s.Secret, body))
	req.Header.Set(TimestampHeader, strconv.FormatInt(now().Unix(), 10))
	client := s.Client
	if client == nil {
		client = &http.Client{Timeout: httpSMSTimeout}
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL may hold a token of the gateway's; say only where it went.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("http sms sender %s: %w", redactedHost(s.URL), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("http sms sender %s: gateway answered %s", redactedHost(s.URL), resp.Status)
	}
	return nil
}

// redactedHost is the host of a URL, for error messages.
func redactedHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Host
}
