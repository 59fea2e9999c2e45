package redact

import "strings"

// userinfoMask replaces the whole userinfo of a URL: a user name alone may
// be a secret (NATS puts a token there).
const userinfoMask = "xxxxx"

// URL hides the credentials of a URL, or of a comma-separated list of URLs
// as NATS_URL takes, so that it can go into a log line or an error. It
// works on the text, not on a parse, so text that is not a valid URL (the
// very case that ends up in an error) loses its password too: everything
// between a "://" (or the start) and the last '@' before the next "://"
// becomes "xxxxx". That hides a path or query holding an '@' as well, which
// is the safe mistake. Credentials in a query string are not recognised.
func URL(s string) string {
	var b strings.Builder
	rest := s
	for {
		// One region: up to the next "://" (the next URL's scheme and the
		// comma before it come along), or the end.
		end := strings.Index(rest, "://")
		region := rest
		if end >= 0 {
			region = rest[:end]
		}
		if at := strings.LastIndexByte(region, '@'); at >= 0 {
			b.WriteString(userinfoMask)
			region = region[at:]
		}
		b.WriteString(region)
		if end < 0 {
			return b.String()
		}
		b.WriteString("://")
		rest = rest[end+3:]
	}
}
