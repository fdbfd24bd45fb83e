package ui

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// chooseLang picks the page language, most explicit wish first: the
// ?lang= switch (remembered in a cookie), the remembered choice, the
// client's ui_locales (OpenID Connect, in the return_to query), the
// browser's Accept-Language, and finally Chinese.
func (p *Pages) chooseLang(w http.ResponseWriter, r *http.Request, returnTo string) string {
	if l, ok := matchLang(r.URL.Query().Get("lang")); ok {
		http.SetCookie(w, &http.Cookie{
			Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: p.secure, SameSite: http.SameSiteLaxMode,
		})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := matchLang(c.Value); ok {
			return l
		}
	}
	if l, ok := firstLang(strings.Fields(uiLocales(returnTo))); ok {
		return l
	}
	if l, ok := firstLang(acceptLanguages(r.Header.Get("Accept-Language"))); ok {
		return l
	}
	return langZH
}

// uiLocales returns the ui_locales parameter of an authorization request.
func uiLocales(returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil {
		return ""
	}
	return u.Query().Get("ui_locales")
}

// firstLang returns the first of tags that the pages speak.
func firstLang(tags []string) (string, bool) {
	for _, t := range tags {
		if l, ok := matchLang(t); ok {
			return l, true
		}
	}
	return "", false
}

// matchLang maps a BCP 47 tag to a page language: any Chinese tag to zh-CN
// (the only Chinese the catalogue has), any English tag to en.
func matchLang(tag string) (string, bool) {
	primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
	switch primary {
	case "zh":
		return langZH, true
	case "en":
		return langEN, true
	}
	return "", false
}

// acceptLanguages returns the tags of an Accept-Language header, highest
// quality first; tags with q=0 are refused and left out.
func acceptLanguages(header string) []string {
	type weighted struct {
		tag string
		q   float64
	}
	var tags []weighted
	for part := range strings.SplitSeq(header, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if tag = strings.TrimSpace(tag); tag != "" && q > 0 {
			tags = append(tags, weighted{tag, q})
		}
	}
	sort.SliceStable(tags, func(i, j int) bool { return tags[i].q > tags[j].q })
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = t.tag
	}
	return out
}

// otherLang is the language the switch link offers.
func otherLang(lang string) string {
	if lang == langEN {
		return langZH
	}
	return langEN
}

// switchURL is the current page in the other language. Only return_to is
// carried over, the one parameter every page takes.
func switchURL(path, returnTo, lang string) string {
	q := url.Values{"lang": {otherLang(lang)}}
	if returnTo != "/" {
		q.Set("return_to", returnTo)
	}
	return path + "?" + q.Encode()
}

// msg looks a key up in the catalogue of lang; a missing key shows itself,
// which the catalogue tests make sure never happens.
func msg(lang, key string) string {
	if s, ok := catalogue[lang][key]; ok {
		return s
	}
	return key
}
