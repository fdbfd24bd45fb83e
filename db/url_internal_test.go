package db

import "testing"

func TestPostgresURLGetsAConnectTimeout(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://u@h:5432/d?sslmode=disable", "postgres://u@h:5432/d?connect_timeout=5&sslmode=disable"},
		{"postgres://u@h/d?connect_timeout=1", "postgres://u@h/d?connect_timeout=1"},
		{"host=h user=u", "host=h user=u"},
	}
	for _, tc := range tests {
		if got := withDefaultConnectTimeout(tc.in); got != tc.want {
			t.Errorf("withDefaultConnectTimeout(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
