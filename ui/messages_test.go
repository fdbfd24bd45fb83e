package ui

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCataloguesHaveTheSameKeys(t *testing.T) {
	if len(catalogue) != 2 {
		t.Fatalf("catalogue has %d languages, want zh-CN and en", len(catalogue))
	}
	for key := range catalogue[langZH] {
		if _, ok := catalogue[langEN][key]; !ok {
			t.Errorf("%q is in zh-CN but not in en", key)
		}
	}
	for key := range catalogue[langEN] {
		if _, ok := catalogue[langZH][key]; !ok {
			t.Errorf("%q is in en but not in zh-CN", key)
		}
	}
	for lang, msgs := range catalogue {
		for key, text := range msgs {
			if strings.TrimSpace(text) == "" {
				t.Errorf("%s %q is empty", lang, key)
			}
			if strings.Count(text, "%s") != strings.Count(catalogue[langZH][key], "%s") {
				t.Errorf("%s %q takes a different number of arguments", lang, key)
			}
		}
	}
}

// usedKeys finds catalogue keys quoted in the templates ({{.T "key"}}) and
// in the Go code (msg(lang, "key")).
func usedKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	tmplKey := regexp.MustCompile(`\.T "([^"]+)"`)
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(path)
		for _, m := range tmplKey.FindAllStringSubmatch(string(b), -1) {
			keys[m[1]] = path
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	goKey := regexp.MustCompile(`"((?:site|lang|login|logout|consent|error|csrf)\.[a-z_.]+)"`)
	files, _ := filepath.Glob("*.go")
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "messages.go" {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range goKey.FindAllStringSubmatch(string(b), -1) {
			// Template file names and key prefixes look like keys.
			if !strings.HasSuffix(m[1], ".html") && !strings.HasSuffix(m[1], ".") {
				keys[m[1]] = name
			}
		}
	}
	return keys
}

func TestEveryUsedKeyIsInTheCatalogue(t *testing.T) {
	keys := usedKeys(t)
	if len(keys) < 20 {
		t.Fatalf("found only %d keys; is the search broken?", len(keys))
	}
	for key, where := range keys {
		if _, ok := catalogue[langZH][key]; !ok {
			t.Errorf("%s uses %q, which the catalogue lacks", where, key)
		}
	}
}

func TestTemplatesHaveNoInlineScriptOrStyle(t *testing.T) {
	forbidden := regexp.MustCompile(`(?i)<script|<style|\sstyle=|\son[a-z]+=|javascript:`)
	// The one script allowed: our own file, on the pages whose CSP allows it.
	passkeyScript := regexp.MustCompile(`<script src="\{\{\.PasskeyJS\}\}" defer></script>`)
	// And the QR sign-in's polling, on the sign-in page under the same rule.
	qrScript := regexp.MustCompile(`<script src="\{\{\.QR\.Script\}\}" defer></script>`)
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, _ := templateFS.ReadFile("templates/" + e.Name())
		b = passkeyScript.ReplaceAll(b, nil)
		b = qrScript.ReplaceAll(b, nil)
		if m := forbidden.FindString(string(b)); m != "" {
			t.Errorf("%s contains %q, which the CSP blocks", e.Name(), m)
		}
	}
}

// TestTemplatesHaveNoHardCodedText checks that what a person reads comes
// from the catalogue: with template actions and markup removed, nothing
// but punctuation is left.
func TestTemplatesHaveNoHardCodedText(t *testing.T) {
	actions := regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	entries, _ := templateFS.ReadDir("templates")
	for _, e := range entries {
		b, _ := templateFS.ReadFile("templates/" + e.Name())
		text := visibleText(actions.ReplaceAllString(string(b), " "))
		text = strings.TrimSpace(strings.Trim(text, "·"))
		if text != "" {
			t.Errorf("%s has text outside the catalogue: %q", e.Name(), text)
		}
	}
}
