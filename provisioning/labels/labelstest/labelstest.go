// Package labelstest reads a label sheet back as a person's phone would:
// pdftoppm (poppler-utils) renders the PDF, and each label's QR code is
// cropped at its place on the sheet and decoded (gozxing).
package labelstest

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/makiuchi-d/gozxing"
	gzqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/tuanju/tuanju/provisioning/labels"
)

// dpi the tests render at: a QR module (1/40 inch) is exactly 5 pixels.
const dpi = 200

// Render turns a label PDF into one PNG per page with pdftoppm (poppler).
func Render(t testing.TB, pdf []byte) []image.Image {
	t.Helper()
	if _, err := exec.LookPath("pdftoppm"); err != nil {
		t.Fatalf("pdftoppm is needed (apt-get install poppler-utils): %v", err)
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "labels.pdf")
	if err := os.WriteFile(in, pdf, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pdftoppm", "-r", fmt.Sprint(dpi), "-aa", "no", "-aaVector", "no", "-gray", "-png", in, filepath.Join(dir, "page")).CombinedOutput()
	if err != nil {
		t.Fatalf("pdftoppm: %v: %s", err, out)
	}
	var pages []image.Image
	for i := 1; ; i++ {
		var f *os.File
		for _, name := range []string{fmt.Sprintf("page-%d.png", i), fmt.Sprintf("page-%02d.png", i), fmt.Sprintf("page-%03d.png", i)} {
			if f, err = os.Open(filepath.Join(dir, name)); err == nil {
				break
			}
		}
		if f == nil {
			break
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, img)
	}
	return pages
}

// DecodeAll reads back the QR code of each of n labels from the rendered
// pages, cropping each label's QR box.
func DecodeAll(t testing.TB, pages []image.Image, n int) []string {
	t.Helper()
	px := func(mm float64) int { return int(mm / 25.4 * dpi) }
	reader := gzqr.NewQRCodeReader()
	var out []string
	for i := 0; i < n; i++ {
		page, x, y := labels.Cell(i)
		if page >= len(pages) {
			t.Fatalf("label %d is on page %d; %d pages rendered", i, page+1, len(pages))
		}
		qx, qy, size := labels.QRBox(x, y)
		r := image.Rect(px(qx)-4, px(qy)-4, px(qx+size)+4, px(qy+size)+4)
		sub := pages[page].(interface {
			SubImage(image.Rectangle) image.Image
		}).SubImage(r)
		bmp, err := gozxing.NewBinaryBitmapFromImage(sub)
		if err != nil {
			t.Fatal(err)
		}
		// As a phone's scanner does: look again, harder, before giving up.
		var res *gozxing.Result
		for _, hints := range []map[gozxing.DecodeHintType]interface{}{
			nil,
			{gozxing.DecodeHintType_TRY_HARDER: true},
			// The crop holds the code and its quiet zone only: read it
			// as a pure barcode (the grid from its bounding box).
			{gozxing.DecodeHintType_PURE_BARCODE: true},
		} {
			if res, err = reader.Decode(bmp, hints); err == nil {
				break
			}
		}
		if err != nil {
			if dir := os.Getenv("TUANJU_SCREENSHOTS"); dir != "" { // to look at by eye
				if f, ferr := os.Create(filepath.Join(dir, fmt.Sprintf("label-%d.png", i))); ferr == nil {
					png.Encode(f, sub)
					f.Close()
				}
			}
			t.Fatalf("label %d: no QR code read: %v", i, err)
		}
		out = append(out, res.GetText())
	}
	return out
}
