package browsertest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axeVersion is the axe-core release the accessibility check runs. It is
// fetched with npm into the user's cache on first use, never committed.
const axeVersion = "4.14.1"

var (
	axeOnce   sync.Once
	axeSource string
	axeErr    error
)

// axeScript returns axe.min.js, installing it with npm into a cache
// directory the first time, or "" when it cannot be had. Without npm or
// the registry the check is left out, except with CI=true, where the test
// fails.
func axeScript(t *testing.T) string {
	t.Helper()
	axeOnce.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "sso-browsertest", "axe-core-"+axeVersion)
		file := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
		if _, err := os.Stat(file); err != nil {
			npm := exec.Command("npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", dir, "axe-core@"+axeVersion)
			if out, err := npm.CombinedOutput(); err != nil {
				axeErr = fmt.Errorf("npm install axe-core@%s: %v: %s", axeVersion, err, lastLines(string(out), 5))
				return
			}
		}
		b, err := os.ReadFile(file)
		if err != nil {
			axeErr = err
			return
		}
		axeSource = string(b)
	})
	if axeErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("accessibility check needs axe-core: %v", axeErr)
		}
		t.Logf("accessibility check left out, it needs axe-core: %v", axeErr)
	}
	return axeSource
}

// axeViolation is one failed axe rule and where it failed.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// checkAccessibility runs axe-core's WCAG 2.1 A and AA rules in the page
// and fails on every serious or critical violation; lesser ones are logged.
// The script is evaluated through the DevTools Protocol, which the page's
// Content-Security-Policy does not govern, so the page is checked exactly
// as served.
func (b *tab) checkAccessibility(page string) {
	b.t.Helper()
	src := axeScript(b.t)
	if src == "" {
		return
	}
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](src+";\ntrue")); err != nil {
		b.t.Fatalf("%s: load axe-core: %v", page, err)
	}
	out, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`axe.run(document, {
		runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
		resultTypes: ["violations"]
	}).then(r => JSON.stringify(r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help,
		nodes: v.nodes.map(n => n.target.join(" "))
	}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: run axe-core: %v", page, err)
	}
	var violations []axeViolation
	if err := json.Unmarshal([]byte(out), &violations); err != nil {
		b.t.Fatalf("%s: axe-core result: %v", page, err)
	}
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Errorf("%s: %s violation %s (%s) at %v", page, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			b.t.Logf("%s: %s violation %s (%s) at %v", page, v.Impact, v.ID, v.Help, v.Nodes)
		}
	}
}

func TestAccessibilityOfSignInConsentAndAccount(t *testing.T) {
	hh := need(t)
	if axeScript(t) == "" {
		t.Skip("axe-core is not available")
	}
	b := newTab(t, "desktop")
	b.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=tax"))
	b.waitText("登录以继续使用“税务办事系统”")
	b.checkAccessibility("sign-in")

	// The sign-in page with an error shown.
	b.signIn(userA11y, "not the password")
	b.waitText("账号或密码错误。")
	b.checkAccessibility("sign-in with an error")

	b.do("type the password", chromedp.SendKeys(chromedp.ID("password"), hh.users[userA11y]),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	b.waitText("授权确认")
	b.checkAccessibility("consent")
	b.do("allow", chromedp.Click(chromedp.CSS(`button[name="decision"][value="allow"]`)))
	b.waitText("Signed in as")

	b.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	b.waitText("个人中心")
	b.checkAccessibility("account centre")
	b.screenshot("account")

	// The same pages in English.
	b.do("switch to English", chromedp.Click(chromedp.CSS(`a.lang`)))
	b.waitText("My account")
	b.checkAccessibility("account centre (en)")
}
