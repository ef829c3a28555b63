package dnsname

import "testing"

func TestCheckLabels(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"cmnet", true},
		{"m2m.t-mobile.com", true},
		{"turn1.example.org", true},
		{"3GNET", true},
		{"", false},
		{"a..b", false},
		{".a", false},
		{"a.", false},
		{"a_b", false},
		{"a b", false},
		{"a\nb", false},
		{"移动", false},
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},   // 63
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false}, // 64
	} {
		if err := CheckLabels(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckLabels(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
