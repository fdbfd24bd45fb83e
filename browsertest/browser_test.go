package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// tab is one browser context (its own cookies) with one page, closed when
// the test ends.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
}

// shots numbers screenshots across a test's tabs, in the order taken.
var shots sync.Map // *testing.T → *int

func newTab(t *testing.T, name string) *tab {
	t.Helper()
	hh := need(t)
	ctx, cancel := chromedp.NewContext(hh.browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open %s tab: %v", name, err)
	}
	return &tab{t: t, ctx: ctx, name: name}
}

// do runs actions, failing the test on error.
func (b *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, expr, err)
	}
	return v
}

// text is what a person reads on the page.
func (b *tab) text() string {
	b.t.Helper()
	return eval[string](b, `document.body ? document.body.innerText : ""`)
}

// waitText waits until the page shows want, and fails with what it shows
// instead. It asks again after a navigation pulls the page away.
func (b *tab) waitText(want string) {
	b.t.Helper()
	js, _ := json.Marshal(want)
	expr := fmt.Sprintf(`document.readyState === "complete" && document.body.innerText.includes(%s)`, js)
	if err := b.waitTrue(expr, 15*time.Second); err != nil {
		b.screenshot("failed")
		b.t.Fatalf("%s: waiting for %q: %v; the page shows: %.600s", b.name, want, err, eval[string](b, `document.documentElement.outerHTML`))
	}
}

// waitTrue waits until a JavaScript expression is true in the page.
func (b *tab) waitTrue(expr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return nil
		}
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	if last == nil {
		last = fmt.Errorf("still false after %s", within)
	}
	return last
}

// focused is the id of the element that has the keyboard focus.
func (b *tab) focused() string {
	b.t.Helper()
	return eval[string](b, `document.activeElement ? document.activeElement.id : ""`)
}

// focusOn waits up to 5 s for the keyboard focus to reach the element
// with the given id and returns the id that has it then: Chromium moves
// the focus to an autofocus field at its next rendering update, which on
// a busy machine can come after the page has finished loading.
func (b *tab) focusOn(id string) string {
	b.t.Helper()
	js, _ := json.Marshal(id)
	_ = b.waitTrue(fmt.Sprintf(`document.activeElement && document.activeElement.id === %s`, js), 5*time.Second)
	return b.focused()
}

// screenshot saves the whole page to the test's temp dir, and to
// $SSO_TEST_SCREENSHOTS when set, so a person can look at each page.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("%s: screenshot %s: %v", b.name, name, err)
		return
	}
	n, _ := shots.LoadOrStore(b.t, new(int))
	*n.(*int)++
	file := fmt.Sprintf("%02d-%s-%s.png", *n.(*int), b.name, name)
	dirs := []string{b.t.TempDir()}
	if d := os.Getenv("SSO_TEST_SCREENSHOTS"); d != "" {
		dir := filepath.Join(d, strings.ReplaceAll(b.t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			dirs = append(dirs, dir)
		}
	}
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, file), png, 0o644); err != nil {
			b.t.Errorf("save screenshot: %v", err)
		}
	}
}

// signIn fills the sign-in form the tab shows and submits it.
func (b *tab) signIn(username, password string) {
	b.t.Helper()
	b.do("sign in",
		chromedp.WaitVisible(chromedp.ID("identifier")),
		chromedp.SendKeys(chromedp.ID("identifier"), username),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)),
	)
}

func TestSignInConsentAndLandInRelyingParty(t *testing.T) {
	hh := need(t)
	b := newTab(t, "desktop")
	b.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=tax"))
	b.waitText("登录以继续使用“税务办事系统”")
	if f := b.focusOn("identifier"); f != "identifier" {
		t.Errorf("focus is on %q, want the account field", f)
	}
	b.screenshot("sign-in")

	// A wrong password: the page says so and keeps what was typed.
	b.signIn(userAlice, "not the password")
	b.waitText("账号或密码错误。")
	if got := eval[string](b, `document.getElementById("identifier").value`); got != userAlice {
		t.Errorf("the account field holds %q after a wrong password", got)
	}
	if f := b.focusOn("password"); f != "password" {
		t.Errorf("after a wrong password the focus is on %q, want the password field", f)
	}
	b.screenshot("wrong-password")

	b.do("type the password", chromedp.SendKeys(chromedp.ID("password"), hh.users[userAlice]),
		chromedp.Click(chromedp.CSS(`form[action="/login"] button[type="submit"]`)))
	b.waitText("授权确认")
	b.waitText("“税务办事系统”请求获得以下权限：")
	b.screenshot("consent")

	b.do("allow", chromedp.Click(chromedp.CSS(`button[name="decision"][value="allow"]`)))
	b.waitText("Signed in as Alice Browser")
	if loc := eval[string](b, `location.href`); !strings.HasPrefix(loc, hh.rp.url+"/cb") {
		t.Errorf("landed on %s", loc)
	}
	if amr := eval[string](b, `document.getElementById("amr").textContent`); !strings.Contains(amr, "pwd") {
		t.Errorf("relying party sees %s", amr)
	}
	b.screenshot("relying-party")
}

func TestLanguageSwitch(t *testing.T) {
	hh := need(t)
	b := newTab(t, "desktop")
	b.do("open the sign-in page", chromedp.Navigate(hh.issuer+"/login"))
	b.waitText("用户名、手机号或身份证号")
	if lang := eval[string](b, `document.documentElement.lang`); lang != "zh-CN" {
		t.Errorf("html lang %q, want zh-CN by default", lang)
	}
	b.screenshot("chinese")

	b.do("switch to English", chromedp.Click(chromedp.CSS(`a.lang`)))
	b.waitText("Username, phone number or ID number")
	if lang := eval[string](b, `document.documentElement.lang`); lang != "en" {
		t.Errorf("html lang %q after switching", lang)
	}
	if h1 := eval[string](b, `document.querySelector("h1").textContent`); h1 != "Sign in" {
		t.Errorf("heading %q", h1)
	}
	b.screenshot("english")

	// The choice sticks: the next page is in English without asking.
	b.do("reload", chromedp.Navigate(hh.issuer+"/login"))
	b.waitText("Username, phone number or ID number")
	b.do("switch back", chromedp.Click(chromedp.CSS(`a.lang`)))
	b.waitText("用户名、手机号或身份证号")
	b.screenshot("chinese-again")
}

func TestQRCodeLoginWithTwoBrowsers(t *testing.T) {
	hh := need(t)

	// The phone is signed in already.
	phone := newTab(t, "phone")
	phone.do("phone screen", chromedp.EmulateViewport(360, 740))
	phone.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	phone.signIn(userQR, hh.users[userQR])
	phone.waitText("个人中心")
	phone.screenshot("signed-in")

	// The desktop opens a department system and is sent to sign in.
	desktop := newTab(t, "desktop")
	responses := chromedp.Events(desktop.ctx, network.ResponseReceived)
	desktop.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=portal"))
	desktop.waitText("扫码登录")
	if err := desktop.waitTrue(`document.getElementById("qr-image").naturalWidth > 0`, 10*time.Second); err != nil {
		t.Fatalf("the QR code image does not show: %v", err)
	}
	desktop.screenshot("qr-code")
	desktop.checkAccessibility("sign-in with the QR code")

	// What the phone's camera would read: the image's URL header says the
	// same as its pixels.
	qrURL := qrURLFrom(t, responses)
	if !strings.HasPrefix(qrURL, hh.issuer+"/qr?t=") {
		t.Fatalf("the code encodes %q", qrURL)
	}

	phone.do("scan", chromedp.Navigate(qrURL))
	phone.waitText("确认在电脑上登录")
	text := phone.text()
	for _, want := range []string{"Chrome", "127.0.0.1", "确认登录", "拒绝"} {
		if !strings.Contains(text, want) {
			t.Errorf("the phone does not show %q: %s", want, text)
		}
	}
	phone.screenshot("confirm")
	phone.checkAccessibility("QR confirmation (phone)")
	phone.do("approve", chromedp.Click(chromedp.CSS(`button[name="decision"][value="approve"]`)))
	phone.waitText("电脑将在一秒钟内完成登录")
	phone.screenshot("approved")

	// The desktop follows by itself: no click, it lands in the system.
	desktop.waitText("Signed in as 扫码用户")
	if amr := eval[string](desktop, `document.getElementById("amr").textContent`); !strings.Contains(amr, "qr") {
		t.Errorf("the desktop's sign-in says %s", amr)
	}
	desktop.screenshot("signed-in")

	// The phone's account centre lists the approval and the sign-in.
	phone.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	phone.waitText("用手机确认扫码登录")
	phone.waitText("扫码登录成功")
	phone.screenshot("activity")
}

// TestQRCodeLoginWithoutJavaScript takes the way a browser without scripts
// takes: nothing polls, so after approving on the phone the person presses
// "I have confirmed on my phone, continue".
func TestQRCodeLoginWithoutJavaScript(t *testing.T) {
	hh := need(t)
	phone := newTab(t, "phone")
	phone.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	phone.signIn(userQR, hh.users[userQR])
	phone.waitText("个人中心")

	desktop := newTab(t, "desktop")
	desktop.do("turn scripts off", func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return chromedp.Void{}, err
	})
	responses := chromedp.Events(desktop.ctx, network.ResponseReceived)
	desktop.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=portal"))
	desktop.waitText("我已在手机上确认，继续")
	qrURL := qrURLFrom(t, responses)

	// Pressed too early: the page says the phone has not confirmed yet and
	// shows a new code.
	responses = chromedp.Events(desktop.ctx, network.ResponseReceived)
	desktop.do("continue too early", chromedp.Click(chromedp.CSS(`#qr-complete button`)))
	desktop.waitText("手机上还没有确认")
	desktop.screenshot("not-yet")
	if qrURL2 := qrURLFrom(t, responses); qrURL2 == qrURL {
		t.Fatal("the page shows the same code again")
	} else {
		qrURL = qrURL2
	}

	phone.do("scan", chromedp.Navigate(qrURL))
	phone.do("approve", chromedp.Click(chromedp.CSS(`button[name="decision"][value="approve"]`)))
	phone.waitText("电脑将在一秒钟内完成登录")

	desktop.do("continue", chromedp.Click(chromedp.CSS(`#qr-complete button`)))
	desktop.waitText("Signed in as 扫码用户")
	desktop.screenshot("signed-in")
}

// qrURLFrom reads the next QR code image's URL header from a tab's
// responses. It ends the subscription: subscribe again for another.
func qrURLFrom(t *testing.T, responses iter.Seq2[network.EventResponseReceived, error]) string {
	t.Helper()
	for ev, err := range responses {
		if err != nil {
			t.Fatalf("network events: %v", err)
		}
		if !strings.Contains(ev.Response.URL, "/login/qr/code.png") {
			continue
		}
		for k, v := range ev.Response.Headers {
			if strings.EqualFold(k, "X-Sso-Qr-Url") {
				s, _ := v.(string)
				return s
			}
		}
		t.Fatalf("the QR code image has no URL header")
	}
	t.Fatal("no QR code image was loaded")
	return ""
}
