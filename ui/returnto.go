package ui

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// maxReturnTo bounds return_to; authorization requests fit well within it.
const maxReturnTo = 4096

// safeReturnTo returns s if it is a path on this server, else "/", so that
// no page can be made to send a person to another site (an open
// redirect). "//host" and "/\host" are refused because browsers read both
// as another host; control characters because browsers drop tabs and
// newlines, turning "/\t/host" into "//host"; any backslash because some
// browsers read it as a slash.
func safeReturnTo(s string) string {
	if s == "" || len(s) > maxReturnTo || !utf8.ValidString(s) || s[0] != '/' {
		return "/"
	}
	if len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return "/"
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "/"
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return s
}

// returnQuery is the query of return_to: the authorization request whose
// client_id, scope and login_hint the pages show.
func returnQuery(returnTo string) url.Values {
	u, err := url.Parse(returnTo)
	if err != nil {
		return url.Values{}
	}
	return u.Query()
}

// withParam appends name=value to the query of a local path, before any
// fragment.
func withParam(path, name, value string) string {
	path, frag, hasFrag := strings.Cut(path, "#")
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	path += sep + url.QueryEscape(name) + "=" + url.QueryEscape(value)
	if hasFrag {
		path += "#" + frag
	}
	return path
}

// seeOther sends the browser to a local path already checked by
// safeReturnTo. It sets Location itself, byte for byte, because
// http.Redirect cleans paths and the authorization request must come back
// exactly as it left.
func seeOther(w http.ResponseWriter, path string) {
	w.Header().Set("Location", path)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusSeeOther)
}

// loginURL is the sign-in page that comes back to returnTo.
func loginURL(returnTo string) string {
	return "/login?" + url.Values{"return_to": {returnTo}}.Encode()
}
