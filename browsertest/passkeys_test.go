package browsertest

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// virtualAuthenticator gives the tab a platform authenticator of the kind
// a phone or laptop has (fingerprint, resident keys) through Chrome's
// WebAuthn domain, and returns its id. It touches itself: presence and
// verification always succeed, as when the person lays a finger on it.
func (b *tab) virtualAuthenticator() webauthn.AuthenticatorID {
	b.t.Helper()
	var id webauthn.AuthenticatorID
	b.do("add a virtual authenticator", func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		off := false
		if _, err := cdp.Call(ctx, t, webauthn.Enable, webauthn.EnableParams{EnableUI: &off}); err != nil {
			return chromedp.Void{}, err
		}
		res, err := cdp.Call(ctx, t, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{
				Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21,
				Transport:      webauthn.AuthenticatorTransportInternal,
				HasResidentKey: true, HasUserVerification: true, IsUserVerified: true,
				AutomaticPresenceSimulation: true,
				// cdproto sends generateCmtgKeyOnNextOperation with every
				// credential added, which Chrome takes only from an
				// authenticator that has the extension.
				HasCmtgKey: true,
			},
		})
		id = res.AuthenticatorID
		return chromedp.Void{}, err
	})
	return id
}

// credentials lists what the authenticator holds.
func (b *tab) credentials(id webauthn.AuthenticatorID) []*webauthn.Credential {
	b.t.Helper()
	var creds []*webauthn.Credential
	b.do("list credentials", func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		res, err := cdp.Call(ctx, t, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
		creds = res.Credentials
		return chromedp.Void{}, err
	})
	return creds
}

func TestPasskeyRegistrationAndPasswordlessSignIn(t *testing.T) {
	hh := need(t)
	b := newTab(t, "laptop")
	b.do("open the account centre", chromedp.Navigate(hh.issuer+"/account"))
	b.signIn(userPasskey, hh.users[userPasskey])
	b.waitText("个人中心")
	b.do("open passkeys", chromedp.Click(chromedp.CSS(`a[href="/account/passkeys"]`)))
	b.waitText("你还没有添加通行密钥。")
	// Added once the tab shows the issuer's pages, whose frame it serves.
	authenticator := b.virtualAuthenticator()
	b.screenshot("no-passkeys")

	b.fill("passkey-name", "我的笔记本")
	b.do("add a passkey", chromedp.Click(chromedp.ID("passkey-register-button")))
	b.waitText("添加于")
	if h2 := eval[string](b, `(document.querySelector("section.passkey h2") || {}).textContent || ""`); h2 != "我的笔记本" {
		t.Errorf("the new passkey is named %q, want the name typed", h2)
	}
	if eval[bool](b, `!document.getElementById("passkey-error").hidden`) {
		t.Errorf("the page shows an error: %s", eval[string](b, `document.getElementById("passkey-error").textContent`))
	}
	b.screenshot("passkey-added")
	creds := b.credentials(authenticator)
	if len(creds) != 1 || !creds[0].IsResidentCredential || creds[0].RpID != "localhost" {
		t.Fatalf("the authenticator holds %+v, want one discoverable credential for localhost", creds)
	}

	// Sign out, then in again with no account and no password typed. The
	// sign-in page also offers passkeys in the account field's autofill,
	// which the virtual authenticator would answer on its own at once; so
	// the laptop's authenticator is away while the page loads, and comes
	// back, key and all, before the person presses the passkey button.
	b.do("sign out", chromedp.Navigate(hh.issuer+"/logout"))
	b.submit("/logout")
	b.waitText("你已安全退出。")
	b.do("put the authenticator away", func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: authenticator})
		return chromedp.Void{}, err
	})
	b.do("open the department system", chromedp.Navigate(hh.rp.url+"/start?client=portal"))
	b.waitText("使用通行密钥登录")
	if f := b.focusOn("identifier"); f != "identifier" {
		t.Errorf("focus is on %q, want the account field", f)
	}
	b.screenshot("sign-in")
	authenticator = b.virtualAuthenticator()
	key := *creds[0]
	key.ActiveCmtgKeyIndex = nil // the key has no CMTG keys to point at
	b.do("bring the key back", func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, t, webauthn.AddCredential, webauthn.AddCredentialParams{AuthenticatorID: authenticator, Credential: &key})
		return chromedp.Void{}, err
	})
	// A script click: the button starts a navigation, which a CDP click
	// would wait on.
	eval[bool](b, `document.getElementById("passkey-login-button").click(), true`)
	b.waitText("Signed in as 通行密钥用户")
	if amr := eval[string](b, `document.getElementById("amr").textContent`); !strings.Contains(amr, "swk") || !strings.Contains(amr, "user") {
		t.Errorf("relying party sees %s, want a software key with user verification", amr)
	}
	b.screenshot("relying-party")
}
