package browsertest

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The admin console: the administrator sso creates on its first start
// registers a client and builds two towns with people in them; the admin
// of one town, handed a reset link, signs in and sees only that town.

// fill types into the fields of a form, by id.
func (b *tab) fill(fields ...string) {
	b.t.Helper()
	for i := 0; i+1 < len(fields); i += 2 {
		b.do("fill "+fields[i], chromedp.SetValue(chromedp.ID(fields[i]), fields[i+1]))
	}
}

// choose picks the option of a select whose text contains label.
func (b *tab) choose(id, label string) {
	b.t.Helper()
	ok := eval[bool](b, `(() => { const s = document.getElementById(`+jsString(id)+`);
		for (const o of s.options) { if (o.textContent.includes(`+jsString(label)+`)) { s.value = o.value; return true } }
		return false })()`)
	if !ok {
		b.t.Fatalf("%s: no option %q in #%s", b.name, label, id)
	}
}

// submit presses the submit button of the form whose action is action.
func (b *tab) submit(action string) {
	b.t.Helper()
	b.do("submit "+action, chromedp.Click(chromedp.CSS(`form[action="`+action+`"] button[type="submit"]`)))
}

func jsString(s string) string {
	return "`" + strings.NewReplacer("`", "\\`", "\\", "\\\\", "$", "\\$").Replace(s) + "`"
}

// currentID is the last path segment of the page's URL.
func (b *tab) currentID() string {
	b.t.Helper()
	return eval[string](b, `location.pathname.split("/").pop()`)
}

func TestConsoleAdminCreatesClientAndUsersAndTownAdminSeesOnlyItsTown(t *testing.T) {
	hh := need(t)
	suffix := strings.ToLower(rand.Text()[:6])
	b := newTab(t, "admin")
	b.do("open the console", chromedp.Navigate(hh.issuer+"/admin"))
	b.signIn(userAdmin, hh.users[userAdmin])
	b.waitText("管理控制台")
	b.screenshot("home")

	// A client: the secret is shown once.
	b.do("open clients", chromedp.Click(chromedp.CSS(`nav.console-nav a[href="/admin/clients"]`)))
	b.waitText("登记接入系统")
	b.fill("client-id", "console-"+suffix, "client-name", "控制台登记的系统", "redirect_uris", "https://rp.example/cb")
	b.submit("/admin/clients")
	b.waitText("密钥只显示这一次")
	secret := eval[string](b, `document.getElementById("client-secret").textContent`)
	if len(secret) < 20 {
		t.Fatalf("the secret shown is %q", secret)
	}
	b.screenshot("client-secret")
	b.do("back to the list", chromedp.Click(chromedp.CSS(`a[href="/admin/clients"]:not(nav a)`)))
	b.waitText("控制台登记的系统")
	if strings.Contains(eval[string](b, `document.documentElement.outerHTML`), secret) {
		t.Error("the list shows the secret")
	}

	// A city with two towns.
	b.do("open org units", chromedp.Navigate(hh.issuer+"/admin/org-units"))
	b.waitText("新建顶级机构")
	b.fill("new-name", "市政府"+suffix, "new-code", "city-"+suffix)
	b.choose("new-kind", "市")
	b.submit("/admin/org-units")
	b.waitText("已创建。")
	cityID := b.currentID()
	towns := map[string]string{}
	for town, code := range map[string]string{"东镇": "east", "西镇": "west"} {
		b.do("open the city", chromedp.Navigate(hh.issuer+"/admin/org-units/"+cityID))
		b.waitText("新建下级机构")
		b.fill("new-name", town+suffix, "new-code", code+"-"+suffix)
		b.choose("new-kind", "镇（街道）")
		b.submit("/admin/org-units")
		b.waitText("已创建。")
		towns[town] = b.currentID()
	}
	b.screenshot("town")

	// People: the east town's admin and one resident in each town.
	newUser := func(username, name, town, role string) string {
		b.do("new user", chromedp.Navigate(hh.issuer+"/admin/users/new"))
		b.waitText("新建用户")
		b.fill("username", username, "display_name", name)
		b.choose("kind", "工作人员")
		b.choose("org_unit_id", town+suffix)
		b.choose("org_role", role)
		b.submit("/admin/users")
		b.waitText("已创建。")
		b.waitText(name)
		return b.currentID()
	}
	eastAdmin := newUser("east-admin-"+suffix, "东镇管理员", "东镇", "机构管理员")
	newUser("east-res-"+suffix, "东镇居民", "东镇", "成员")
	westID := newUser("west-res-"+suffix, "西镇居民", "西镇", "成员")
	b.do("open the east admin", chromedp.Navigate(hh.issuer+"/admin/users/"+eastAdmin))
	b.waitText("东镇管理员")
	b.do("make a reset link", chromedp.Click(chromedp.CSS(`form[action$="/reset"] button`)))
	b.waitText("重置密码链接如下")
	link := eval[string](b, `document.querySelector(".secret code").textContent`)
	if !strings.HasPrefix(link, hh.issuer+"/reset?token=") {
		t.Fatalf("reset link %q", link)
	}
	b.screenshot("reset-link")

	// The east admin sets a password with the link and signs in.
	east := newTab(t, "east-admin")
	east.do("phone screen", chromedp.EmulateViewport(360, 740))
	east.do("open the link", chromedp.Navigate(link))
	password := rand.Text() + "Aa1!"
	east.do("set the password", chromedp.SendKeys(chromedp.ID("password"), password))
	east.do("submit", chromedp.Click(chromedp.CSS(`form button[type="submit"].primary`)))
	east.waitText("密码已重置")
	east.do("open the console", chromedp.Navigate(hh.issuer+"/admin/users"))
	east.signIn("east-admin-"+suffix, password)
	east.waitText("东镇居民")
	if text := east.text(); strings.Contains(text, "西镇居民") || strings.Contains(text, "west-res-") {
		t.Errorf("the east admin's list shows the west town: %s", text)
	}
	if w := eval[int](east, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("the users page is %d px wide on a 360-px phone", w)
	}
	east.screenshot("town-users")

	// Asking for the west town by its unit, or for its resident by URL,
	// shows why not and nothing of them.
	east.do("ask for the west town", chromedp.Navigate(hh.issuer+"/admin/users?org_unit="+towns["西镇"]))
	east.waitText("您无权对此对象执行该操作")
	east.do("open the west resident", chromedp.Navigate(hh.issuer+"/admin/users/"+westID))
	east.waitText("您无权对此对象执行该操作")
	if text := east.text(); strings.Contains(text, "西镇居民") {
		t.Errorf("the east admin sees the west resident: %s", text)
	}
	east.screenshot("refused")
}

func TestAccessibilityOfTheConsole(t *testing.T) {
	hh := need(t)
	if axeScript(t) == "" {
		t.Skip("axe-core is not available")
	}
	b := newTab(t, "admin")
	b.do("open the console", chromedp.Navigate(hh.issuer+"/admin"))
	b.signIn(userAdmin, hh.users[userAdmin])
	b.waitText("管理控制台")
	// Keyboard only: the tab order runs from the language switch through
	// the console's links, and Enter follows one.
	want := []string{"/admin?lang=en", "/admin", "/admin/users"}
	for i, href := range want {
		b.do("tab", chromedp.KeyEvent(kb.Tab))
		got := eval[string](b, `document.activeElement.getAttribute("href") || document.activeElement.tagName`)
		if got != href {
			t.Fatalf("tab %d: focus on %q, want %q", i+1, got, href)
		}
	}
	b.do("press Enter", chromedp.KeyEvent(kb.Enter))
	b.waitText("查询方式")

	for _, p := range []struct{ path, text string }{
		{"/admin", "管理控制台"},
		{"/admin/users", "用户"},
		{"/admin/users/new", "新建用户"},
		{"/admin/org-units", "新建顶级机构"},
		{"/admin/clients", "登记接入系统"},
		{"/admin/audit", "导出 CSV"},
	} {
		b.do("open "+p.path, chromedp.Navigate(hh.issuer+p.path))
		b.waitText(p.text)
		b.checkAccessibility(p.path)
	}
	// A user's page, and an error shown in a form.
	b.do("open the users", chromedp.Navigate(hh.issuer+"/admin/users"))
	b.waitText("用户")
	b.do("open a user", chromedp.Click(chromedp.CSS(`table a[href^="/admin/users/"]`)))
	b.waitText("实名等级")
	b.checkAccessibility("user page")
	b.do("new user", chromedp.Navigate(hh.issuer+"/admin/users/new"))
	b.waitText("新建用户")
	b.fill("username", "x", "phone", "123")
	b.submit("/admin/users")
	b.waitText("填写的内容有误")
	if b.waitTrue(`document.activeElement.getAttribute("aria-invalid") === "true"`, 5*time.Second) != nil {
		t.Errorf("after the error the focus is on %q, not on a field to correct", b.focused())
	}
	if got := eval[string](b, `document.getElementById("phone").value`); got != "123" {
		t.Errorf("the form lost what was typed: phone %q", got)
	}
	b.checkAccessibility("user form with errors")
	b.screenshot("form-errors")

	b.do("switch to English", chromedp.Click(chromedp.CSS(`a.lang`)))
	b.waitText("Search by")
	b.checkAccessibility("console (en)")
}
