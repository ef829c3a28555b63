package batch_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/text/encoding/simplifiedchinese"
	xunicode "golang.org/x/text/encoding/unicode"

	"github.com/tuanju/tuanju/provisioning/batch"
)

var def = batch.Defaults{Language: "zh-CN", TimeZone: "Asia/Shanghai"}

const good = `site,child,region,language,time_zone,reunion_windows,parent_phone
新河小学,小明,河北,zh-CN,Asia/Shanghai,Sat 19:00-20:00; Sun 10:00-11:00,138 1234 5678
新河小学,小红,河北,,,,
`

func gbk(t *testing.T, s string) []byte {
	t.Helper()
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func window(s string) error {
	if !strings.Contains(s, ":") {
		return errors.New("not a window")
	}
	return nil
}

// TestReadCSVEncodings: the same list saved as UTF-8, UTF-8 with a BOM,
// UTF-16 and GBK reads as the same rows; defaults fill empty cells; the
// phone becomes E.164; windows are split.
func TestReadCSVEncodings(t *testing.T) {
	u16, _ := xunicode.UTF16(xunicode.LittleEndian, xunicode.UseBOM).NewEncoder().Bytes([]byte(good))
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"UTF-8", []byte(good)},
		{"UTF-8 with BOM", append([]byte("\uFEFF"), good...)},
		{"GBK", gbk(t, good)},
		{"UTF-16", u16},
		{"CRLF", []byte(strings.ReplaceAll(good, "\n", "\r\n"))},
		{"Chinese header", []byte(strings.Replace(good, "site,child,region,language,time_zone,reunion_windows,parent_phone", "学校,孩子,地区,语言,时区,团聚时间,家长电话", 1))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := batch.ReadCSV(bytes.NewReader(tc.in), def, window)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Fatalf("%d rows, want 2", len(rows))
			}
			a, b := rows[0], rows[1]
			if a.Site != "新河小学" || a.Child != "小明" || a.ParentPhone != "+8613812345678" || len(a.ReunionWindows) != 2 || a.ReunionWindows[1] != "Sun 10:00-11:00" {
				t.Fatalf("row 2 read as %+v", a)
			}
			if b.Language != "zh-CN" || b.TimeZone != "Asia/Shanghai" || b.ParentPhone != "" || b.Line != 3 {
				t.Fatalf("row 3 read as %+v", b)
			}
			if a.Key() == b.Key() {
				t.Fatal("two children share a key")
			}
		})
	}
}

// TestReadCSVRefuses: each malformed file is refused with ErrBadCSV, no
// rows, and a message naming the row and the column at fault.
func TestReadCSVRefuses(t *testing.T) {
	junk := make([]byte, 1<<20)
	rand.Read(junk)
	var many strings.Builder
	many.WriteString("site,child,region\n")
	for i := range 200 {
		fmt.Fprintf(&many, "s%d,c%d,\n", i, i) // every region empty
	}
	for _, tc := range []struct {
		name string
		in   []byte
		want []string // in the message
	}{
		{"empty file", nil, []string{"empty"}},
		{"header only", []byte("site,child,region\n"), []string{"no rows"}},
		{"blank rows only", []byte("site,child,region\n,,\n , , \n"), []string{"no rows"}},
		{"missing column", []byte("site,child\na,b\n"), []string{"missing column region"}},
		{"unknown column", []byte("site,child,region,timezon\na,b,c,Asia/Shanghai\n"), []string{`unknown column "timezon"`}},
		{"repeated column", []byte("site,child,region,school\na,b,c,d\n"), []string{"repeats the site column"}},
		{"duplicate row", []byte("site,child,region\n新河小学,小明,河北\n新河小学,小明,河北\n"), []string{"row 3", "repeat row 2"}},
		{"duplicate after normalising", []byte("site,child,region\n新河小学,Ming Li,河北\n新河小学 ,ming  li,河北\n"), []string{"row 3", "repeat row 2"}},
		{"empty cell", []byte("site,child,region\n新河小学,,河北\n"), []string{"row 2, child: empty"}},
		{"bad time zone", []byte("site,child,region,time_zone\na,b,c,Asia/Shangai\n"), []string{"row 2, time_zone", "Asia/Shangai"}},
		{"bad language", []byte("site,child,region,language\na,b,c,not a language!\n"), []string{"row 2, language"}},
		{"bad window", []byte("site,child,region,reunion_windows\na,b,c,Saturday evening\n"), []string{"row 2, reunion_windows", "Saturday evening"}},
		{"bad phone", []byte("site,child,region,parent_phone\na,b,c,call me\n"), []string{"row 2, parent_phone"}},
		{"short phone", []byte("site,child,region,parent_phone\na,b,c,12345\n"), []string{"row 2, parent_phone"}},
		{"wrong cell count", []byte("site,child,region\na,b\n"), []string{"row 2", "2 cells"}},
		{"binary junk", junk, []string{"not"}},
		{"NUL in text", []byte("site,child,region\na,b\x00,c\n"), []string{"control character"}},
		{"GBK with invalid bytes", append(gbk(t, good), 0xFF, 0xFF, 0x81), []string{"neither UTF-8 nor GBK"}},
		{"too many problems", []byte(many.String()), []string{"200 problems", "and 150 more"}},
		{"over the size limit", append([]byte("site,child,region\n"), bytes.Repeat([]byte("a,b,c\n"), batch.MaxFileBytes/6+1)...), []string{"over 32 MiB"}},
		{"quote never closed", []byte("site,child,region\n\"a,b,c\n"), []string{"row 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := batch.ReadCSV(bytes.NewReader(tc.in), def, window)
			if !errors.Is(err, batch.ErrBadCSV) {
				t.Fatalf("err %v, want ErrBadCSV", err)
			}
			if rows != nil {
				t.Fatalf("%d rows returned with the error", len(rows))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// FuzzReadCSV: no input panics the reader; a refusal is always ErrBadCSV
// with no rows, and what is accepted has every required cell.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte(good))
	f.Add(append([]byte("\uFEFF"), good...))
	f.Add([]byte("site,child,region\n\"a\nb\",c,d\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := batch.ReadCSV(bytes.NewReader(b), def, window)
		if err != nil {
			if !errors.Is(err, batch.ErrBadCSV) || rows != nil {
				t.Fatalf("refusal %v with %d rows", err, len(rows))
			}
			return
		}
		for _, r := range rows {
			if r.Site == "" || r.Child == "" || r.Region == "" {
				t.Fatalf("accepted a row with an empty required cell: %+v", r)
			}
		}
	})
}
