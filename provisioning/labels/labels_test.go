package labels_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/tuanju/tuanju/provisioning/labels"
	"github.com/tuanju/tuanju/provisioning/labels/labelstest"
)

// TestSheetDecodes: a two-page sheet (25 labels) renders, and every QR
// code reads back as its own pairing link, at its own place on the sheet.
func TestSheetDecodes(t *testing.T) {
	fonts, err := labels.LoadFonts("", "")
	if err != nil {
		t.Fatal(err)
	}
	var ls []labels.Label
	for i := range 25 {
		ls = append(ls, labels.Label{Unit: fmt.Sprintf("B1-%05d", i+1), Site: "新河县第一实验小学（东校区）",
			Child: fmt.Sprintf("小明%d", i), URL: fmt.Sprintf("https://tuanju.example.org/pair#d=abcdefghijklmnopqrstuv%04d&s=AAAAAAAAAAAAAAAAAAAA%02d", i, i)})
	}
	var buf bytes.Buffer
	if err := labels.Write(&buf, ls, fonts, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	pages := labelstest.Render(t, buf.Bytes())
	if len(pages) != 2 {
		t.Fatalf("%d pages, want 2 for 25 labels at %d a page", len(pages), labels.PerPage)
	}
	got := labelstest.DecodeAll(t, pages, len(ls))
	for i, l := range ls {
		if got[i] != l.URL {
			t.Errorf("label %d reads %q, want %q", i, got[i], l.URL)
		}
	}
	if os.Getenv("LABELS_KEEP") != "" {
		os.WriteFile(os.Getenv("LABELS_KEEP"), buf.Bytes(), 0o644)
	}
}
