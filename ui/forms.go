package ui

import (
	"net/http"
)

// postedForm is what every posted form carries besides its own fields.
type postedForm struct {
	returnTo string // already checked by safeReturnTo
	lang     string
}

// readForm parses a posted form and checks that it came from our own page.
// On failure it has answered the request and returns false.
func (p *Pages) readForm(w http.ResponseWriter, r *http.Request) (postedForm, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		lang := p.chooseLang(w, r, "/")
		p.fail(w, r, http.StatusBadRequest, lang, "error.title", "error.form")
		return postedForm{}, false
	}
	f := postedForm{returnTo: safeReturnTo(r.PostForm.Get("return_to"))}
	f.lang = p.chooseLang(w, r, f.returnTo)
	if !p.checkCSRF(r) {
		p.failCSRF(w, r, f.lang)
		return postedForm{}, false
	}
	return f, true
}
