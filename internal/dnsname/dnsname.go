// Package dnsname checks names made of DNS labels (RFC 1035 §2.3.1):
// dot-separated labels of letters, digits and hyphens. A TURN cluster's
// host (turn.urls) is one, and so is a bundle's APN name (3GPP TS 23.003
// §9.1 takes DNS's labels), each with its own limits on top.
package dnsname

import "fmt"

// CheckLabels reports why name is not dot-separated labels of 1..63
// letters, digits and hyphens (no empty label: no leading, trailing or
// double dot).
func CheckLabels(name string) error {
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '.' {
			if c := name[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("has %q, must be letters, digits, hyphens and dots", c)
			}
			continue
		}
		if n := i - start; n == 0 || n > 63 {
			return fmt.Errorf("has a label of %d characters, must be 1..63 between dots", n)
		}
		start = i + 1
	}
	return nil
}
