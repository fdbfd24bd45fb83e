package ui

// The languages the pages speak. Chinese comes first: it is the default.
const (
	langZH = "zh-CN"
	langEN = "en"
)

// catalogue holds every user-visible string, per language. Values with %s
// take one argument (a name or a time), which templates escape.
var catalogue = map[string]map[string]string{
	langZH: {
		"site.name":         "统一身份认证平台",
		"lang.switch":       "English",
		"lang.switch_label": "Switch to English",
		"lang.nav":          "语言",

		"login.title":        "登录",
		"login.continue_to":  "登录以继续使用“%s”",
		"login.identifier":   "用户名、手机号或身份证号",
		"login.password":     "密码",
		"login.submit":       "登录",
		"login.invalid":      "账号或密码错误。",
		"login.locked_until": "该账号已被暂时锁定，请在 %s 之后重试，或联系服务中心。",
		"login.locked":       "该账号已被暂时锁定，请稍后重试，或联系服务中心。",
		"login.disabled":     "该账号已停用，请联系服务中心。",
		"login.missing":      "请输入账号和密码。",
		"login.too_long":     "输入的内容过长，请检查后重试。",
		"login.bad_encoding": "输入的内容包含无法识别的字符，请检查后重试。",

		"logout.title":      "退出登录",
		"logout.confirm":    "确定要退出登录吗？退出后，使用本平台登录的各个系统可能需要重新登录。",
		"logout.submit":     "退出登录",
		"logout.cancel":     "取消",
		"logout.done_title": "已退出登录",
		"logout.done":       "你已安全退出。如果使用的是公共电脑，请关闭浏览器。",
		"logout.continue":   "继续",
		"logout.failed":     "退出登录未能完成，请重新加载页面后再试。",

		"consent.title":                "授权确认",
		"consent.intro":                "“%s”请求获得以下权限：",
		"consent.scope.openid":         "确认你的身份",
		"consent.scope.profile":        "姓名和用户名",
		"consent.scope.email":          "电子邮箱地址",
		"consent.scope.phone":          "手机号码",
		"consent.scope.offline_access": "在你离开后继续访问",
		"consent.remember":             "记住我的选择",
		"consent.allow":                "允许",
		"consent.deny":                 "拒绝",
		"consent.bad_request":          "授权请求无效，或该应用未在本平台登记。请返回原网站重新操作。",

		"error.title":    "出错了",
		"error.internal": "服务暂时不可用，请稍后再试。",
		"error.form":     "无法读取提交的内容，请重新加载页面后再试。",
		"error.home":     "返回首页",
		"csrf.title":     "请重新加载页面",
		"csrf.reload":    "页面已过期，或无法确认请求来自本网站。请重新加载页面后再试。",
	},
	langEN: {
		"site.name":         "Unified Sign-In",
		"lang.switch":       "中文",
		"lang.switch_label": "切换到中文",
		"lang.nav":          "Language",

		"login.title":        "Sign in",
		"login.continue_to":  "Sign in to continue to %s",
		"login.identifier":   "Username, phone number or ID number",
		"login.password":     "Password",
		"login.submit":       "Sign in",
		"login.invalid":      "Wrong account or password.",
		"login.locked_until": "This account is locked for now. Try again after %s or ask the service centre.",
		"login.locked":       "This account is locked for now. Try again later or ask the service centre.",
		"login.disabled":     "This account is disabled. Please contact the service centre.",
		"login.missing":      "Enter your account and password.",
		"login.too_long":     "What you entered is too long. Please check it and try again.",
		"login.bad_encoding": "What you entered contains characters that cannot be read. Please check it and try again.",

		"logout.title":      "Sign out",
		"logout.confirm":    "Do you want to sign out? The services you reached through this sign-in may ask you to sign in again.",
		"logout.submit":     "Sign out",
		"logout.cancel":     "Cancel",
		"logout.done_title": "Signed out",
		"logout.done":       "You are signed out. If this is a shared computer, close the browser.",
		"logout.continue":   "Continue",
		"logout.failed":     "Signing out did not finish. Reload the page and try again.",

		"consent.title":                "Allow access",
		"consent.intro":                "%s is asking for the following access:",
		"consent.scope.openid":         "Confirm who you are",
		"consent.scope.profile":        "Your name and username",
		"consent.scope.email":          "Your email address",
		"consent.scope.phone":          "Your phone number",
		"consent.scope.offline_access": "Keep access when you are away",
		"consent.remember":             "Remember my choice",
		"consent.allow":                "Allow",
		"consent.deny":                 "Deny",
		"consent.bad_request":          "This request is not valid, or the application is not registered here. Go back to the site you came from and try again.",

		"error.title":    "Something went wrong",
		"error.internal": "The service is unavailable right now. Please try again later.",
		"error.form":     "What you sent could not be read. Reload the page and try again.",
		"error.home":     "Go to the start page",
		"csrf.title":     "Please reload the page",
		"csrf.reload":    "This page has expired, or the request could not be confirmed as coming from this site. Reload the page and try again.",
	},
}
