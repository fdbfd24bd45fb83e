package ui

import (
	"strings"
	"testing"
)

func TestSafeReturnTo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/oauth2/auth?client_id=a&state=x%2Fy", "/oauth2/auth?client_id=a&state=x%2Fy"},
		{"/", "/"},
		{"", "/"},
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"/a\\b", "/"},
		{"https://evil.example/", "/"},
		{"evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/a\x7f", "/"},
		{"/\xff", "/"},
		{"/" + strings.Repeat("a", maxReturnTo-1), "/" + strings.Repeat("a", maxReturnTo-1)},
		{"/" + strings.Repeat("a", maxReturnTo), "/"},
	}
	for _, tt := range tests {
		if got := safeReturnTo(tt.in); got != tt.want {
			t.Errorf("safeReturnTo(%.40q) = %.40q, want %.40q", tt.in, got, tt.want)
		}
	}
}

func TestWithParam(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a", "/a?consent=denied"},
		{"/a?b=c", "/a?b=c&consent=denied"},
		{"/a?b=c#f", "/a?b=c&consent=denied#f"},
	}
	for _, tt := range tests {
		if got := withParam(tt.in, "consent", "denied"); got != tt.want {
			t.Errorf("withParam(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
