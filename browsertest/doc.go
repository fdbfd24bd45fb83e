// Package browsertest drives the pages of a real `sso serve` with Debian's
// chromium, headless, through the Chrome DevTools Protocol
// (github.com/chromedp/chromedp): what a person sees, in a real browser,
// with the real Content-Security-Policy and scripts.
//
// The tests build the sso binary once, start one server on SQLite, a test
// relying party, and one browser process shared by every test; each test
// opens its own browser contexts (separate cookie jars), so a test can be
// a desktop and a phone at once. When /usr/bin/chromium is missing, the
// set-up installs it with apt-get; if that fails the tests are skipped,
// except with CI=true, where they fail. SSO_TEST_CHROMIUM names another
// browser binary. Screenshots of every page go to each test's temp dir
// (kept with -test.v when SSO_TEST_SCREENSHOTS names a directory).
package browsertest
