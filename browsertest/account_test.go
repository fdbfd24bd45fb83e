package browsertest

import (
	"fmt"
	mrand "math/rand/v2"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/govsso/sso/users"
)

// Registration, sign-in with an SMS code, two-step verification and the
// sessions of the account centre, as a person goes through them.

// loggedCode waits for the code the log sender wrote for phone, as a
// person waits for the text message. It takes the newest one.
func loggedCode(t *testing.T, phone string) string {
	t.Helper()
	hh := need(t)
	line := regexp.MustCompile(`one-time message.* to=` + phone + ` text=.*Code (\d{6}) `)
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, err := os.ReadFile(hh.serverLog)
		if err != nil {
			t.Fatal(err)
		}
		if m := line.FindAllSubmatch(log, -1); m != nil {
			return string(m[len(m)-1][1])
		}
		if time.Now().After(deadline) {
			t.Fatalf("no code for %s in the server log", phone)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// codesSent counts the codes the log sender wrote for phone.
func codesSent(t *testing.T, phone string) int {
	t.Helper()
	log, err := os.ReadFile(need(t).serverLog)
	if err != nil {
		t.Fatal(err)
	}
	return len(regexp.MustCompile(`one-time message.* to=`+phone+` `).FindAll(log, -1))
}

// press clicks the submit button of the form whose action is action and
// whose hidden action field is step.
func (b *tab) press(action, step string) {
	b.t.Helper()
	b.do("press "+step, chromedp.Click(chromedp.CSS(`form[action="`+action+`"]:has(input[name="action"][value="`+step+`"]) button[type="submit"]`)))
}

func TestRegisterWithSMSCode(t *testing.T) {
	hh := need(t)
	phone := fmt.Sprintf("137%08d", mrand.IntN(100000000))
	username := fmt.Sprintf("citizen-%d", mrand.IntN(1000000))
	b := newTab(t, "desktop")
	b.do("open the sign-in page", chromedp.Navigate(hh.issuer+"/login"))
	b.do("follow the register link", chromedp.Click(chromedp.CSS(`a[href^="/register"]`)))
	b.waitText("使用本人手机号注册个人账号。")
	if f := b.focusOn("phone"); f != "phone" {
		t.Errorf("focus is on %q, want the phone field", f)
	}
	b.screenshot("phone")

	// A number that is not a mobile number: the page says what is wrong.
	b.fill("phone", "12345")
	b.press("/register", "send")
	b.waitText("请输入 11 位中国大陆手机号。")
	if f := b.focusOn("phone"); f != "phone" {
		t.Errorf("after a bad number the focus is on %q, want the phone field", f)
	}
	b.screenshot("bad-phone")

	b.fill("phone", phone)
	b.press("/register", "send")
	b.waitText("验证码已发送")
	if f := b.focusOn("code"); f != "code" {
		t.Errorf("after sending the focus is on %q, want the code field", f)
	}
	b.screenshot("code-sent")
	code := loggedCode(t, phone)

	// A wrong code first: the page says so and keeps what was typed.
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	b.fill("code", wrong, "username", username, "display_name", "注册市民", "password", hh.users[userAlice]+"x")
	b.press("/register", "create")
	b.waitText("验证码错误，请检查后重新输入。")
	if got := eval[string](b, `document.getElementById("username").value`); got != username {
		t.Errorf("the username field holds %q after a wrong code", got)
	}
	if got := eval[string](b, `document.getElementById("password").value`); got != "" {
		t.Error("the page sent the password back")
	}
	b.screenshot("wrong-code")

	b.fill("code", code, "password", hh.users[userAlice]+"x")
	b.press("/register", "create")
	b.waitText("个人中心")
	if path := eval[string](b, `location.pathname`); path != "/account" {
		t.Errorf("registration ended at %s, want the account centre", path)
	}
	text := b.text()
	for _, want := range []string{"注册市民", username, "（当前设备）"} {
		if !strings.Contains(text, want) {
			t.Errorf("the account centre does not show %q: %.400s", want, text)
		}
	}
	b.screenshot("account")

	// The new account signs in with its password in another browser.
	other := newTab(t, "other")
	other.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	other.signIn(username, hh.users[userAlice]+"x")
	other.waitText("注册市民")
	other.screenshot("signed-in")
}

func TestSignInWithSMSCode(t *testing.T) {
	hh := need(t)
	b := newTab(t, "desktop")
	b.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=portal"))
	b.waitText("使用短信验证码登录")
	b.do("choose a code by SMS", chromedp.Click(chromedp.CSS(`a[href^="/login/sms"]`)))
	b.waitText("输入账号绑定的手机号，我们会发送短信验证码。")
	b.waitText("登录以继续使用“政务服务门户”")
	if f := b.focusOn("phone"); f != "phone" {
		t.Errorf("focus is on %q, want the phone field", f)
	}
	b.screenshot("phone")

	sent := codesSent(t, phoneSMS)
	b.fill("phone", phoneSMS)
	b.press("/login/sms", "send")
	b.waitText("验证码已发送")
	if f := b.focusOn("code"); f != "code" {
		t.Errorf("after sending the focus is on %q, want the code field", f)
	}
	b.screenshot("code-sent")
	if codesSent(t, phoneSMS) != sent+1 {
		t.Fatalf("no new code was sent to %s", phoneSMS)
	}
	code := loggedCode(t, phoneSMS)

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	b.fill("code", wrong)
	b.press("/login/sms", "login")
	b.waitText("验证码错误，请检查后重新输入。")
	if f := b.focusOn("code"); f != "code" {
		t.Errorf("after a wrong code the focus is on %q, want the code field", f)
	}
	b.screenshot("wrong-code")

	b.fill("code", code)
	b.press("/login/sms", "login")
	b.waitText("Signed in as 短信登录用户")
	if amr := eval[string](b, `document.getElementById("amr").textContent`); !strings.Contains(amr, "sms") {
		t.Errorf("relying party sees %s", amr)
	}
	b.screenshot("relying-party")
}

func TestTOTPEnrolmentAndSignIn(t *testing.T) {
	hh := need(t)
	b := newTab(t, "desktop")
	b.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	b.signIn(userTOTP, hh.users[userTOTP])
	b.waitText("个人中心")
	b.do("open account security", chromedp.Click(chromedp.CSS(`a[href="/account/security"]`)))
	b.waitText("未开启。开启后，即使密码泄露，他人也无法登录你的账号。")
	b.screenshot("security-off")

	b.do("set up", chromedp.Click(chromedp.CSS(`form[action="/account/totp"] button[type="submit"]`)))
	b.waitText("无法扫描？请在应用中手动输入以下密钥：")
	if err := b.waitTrue(`document.querySelector("img[alt]").naturalWidth > 0`, 10*time.Second); err != nil {
		t.Errorf("the QR code does not show: %v", err)
	}
	b.screenshot("enrol")
	secret, err := users.DecodeTOTPSecret(eval[string](b, `document.getElementById("totp-secret").textContent`))
	if err != nil || len(secret) < 10 {
		t.Fatalf("the secret shown does not read: %v", err)
	}

	// A wrong code: the page says so and the secret stays the same.
	now := time.Now()
	wrong := users.TOTPCode(secret, now.Add(-10*time.Minute), users.TOTPDigits)
	b.fill("code", wrong)
	b.submit("/account/totp")
	b.waitText("验证码不正确，请输入应用中当前显示的验证码。")
	if got, _ := users.DecodeTOTPSecret(eval[string](b, `document.getElementById("totp-secret").textContent`)); string(got) != string(secret) {
		t.Error("a wrong code changed the secret")
	}
	b.screenshot("wrong-code")

	b.fill("code", users.TOTPCode(secret, time.Now(), users.TOTPDigits))
	b.submit("/account/totp")
	b.waitText("两步验证已开启。")
	b.waitText("恢复码只显示这一次。")
	b.screenshot("recovery-codes")
	b.do("done", chromedp.Click(chromedp.CSS(`a[href="/account/security"]`)))
	b.waitText("剩余恢复码")
	b.screenshot("security-on")

	// Another browser: password, then the code of the next time step (the
	// one just used cannot be used again).
	other := newTab(t, "other")
	other.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=portal"))
	other.signIn(userTOTP, hh.users[userTOTP])
	other.waitText("请输入手机上身份验证器应用显示的 6 位验证码。")
	if f := other.focusOn("code"); f != "code" {
		t.Errorf("focus is on %q, want the code field", f)
	}
	other.screenshot("mfa")
	other.fill("code", wrong)
	other.submit("/login/mfa")
	other.waitText("验证码错误或已经使用过，请输入应用中当前显示的验证码。")
	other.screenshot("mfa-wrong")
	other.fill("code", users.TOTPCode(secret, time.Now().Add(30*time.Second), users.TOTPDigits))
	other.submit("/login/mfa")
	other.waitText("Signed in as 两步验证用户")
	if amr := eval[string](other, `document.getElementById("amr").textContent`); !strings.Contains(amr, "otp") || !strings.Contains(amr, "mfa") {
		t.Errorf("relying party sees %s", amr)
	}
	other.screenshot("relying-party")
}

func TestSignOutOtherSessionFromAccountCentre(t *testing.T) {
	hh := need(t)
	a := newTab(t, "a")
	a.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	a.signIn(userSessions, hh.users[userSessions])
	a.waitText("个人中心")
	b := newTab(t, "b")
	b.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	b.signIn(userSessions, hh.users[userSessions])
	b.waitText("个人中心")
	b.screenshot("signed-in")

	a.do("reload", chromedp.Navigate(hh.issuer+"/account"))
	a.waitText("退出该设备")
	rows := `document.querySelectorAll('section[aria-labelledby="sessions-heading"] tbody tr').length`
	if n := eval[int](a, rows); n != 2 {
		t.Fatalf("the account centre lists %d sessions, want 2", n)
	}
	a.screenshot("two-sessions")
	a.do("sign the other out", chromedp.Click(chromedp.CSS(`form[action="/account/sessions/sign-out"] button[type="submit"]`)))
	a.waitText("个人中心")
	if err := a.waitTrue(rows+` === 1`, 10*time.Second); err != nil {
		t.Errorf("the list still shows the other session: %v", err)
	}
	if strings.Contains(a.text(), "退出该设备") {
		t.Error("the page still offers to sign another device out")
	}
	a.screenshot("one-session")

	b.do("reload", chromedp.Navigate(hh.issuer+"/account"))
	b.waitText("用户名、手机号或身份证号")
	if path := eval[string](b, `location.pathname`); path != "/login" {
		t.Errorf("the signed-out browser is at %s, want the sign-in page", path)
	}
	if f := b.focusOn("identifier"); f != "identifier" {
		t.Errorf("focus is on %q, want the account field", f)
	}
	b.screenshot("signed-out")

	// A still works.
	a.do("reload", chromedp.Navigate(hh.issuer+"/account"))
	a.waitText("（当前设备）")
}
