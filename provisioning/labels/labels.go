// Package labels draws a batch's label sheet: one label per unit on A4 label
// paper (3 × 7 labels of 63.5 × 38.1 mm, the common "21 per sheet" layout),
// each with the unit's pairing QR code, its short ID, its site and child,
// and how to pair, in Chinese. Fonts are embedded (subset to the characters
// used): a CJK font and a Latin one, since the common free CJK TrueType font
// (Droid Sans Fallback) has no Latin letters.
package labels

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"codeberg.org/go-pdf/fpdf"
	qrcode "github.com/yeqown/go-qrcode/v2"
)

// Label is what one unit's label says.
type Label struct {
	Unit  string // short ID, e.g. B1-00042
	Site  string
	Child string
	URL   string // the pairing link the QR code carries
}

// Sheet geometry in millimetres: A4, 3 columns × 7 rows (Avery L7160 and its
// many equivalents).
const (
	PageW, PageH = 210.0, 297.0
	Cols, Rows   = 3, 7
	LabelW       = 63.5
	LabelH       = 38.1
	MarginLeft   = 7.2
	MarginTop    = 15.15
	PitchX       = 66.0 // 2.5 mm gap between columns
	PitchY       = LabelH
	// QRSize is the square a label keeps for its QR code, quiet zone
	// included; the code is drawn centred in it with modules of ModuleMM.
	QRSize = 32.0
	// ModuleMM is a QR module's size: 1/40 inch, a whole number of dots on
	// 200, 300, 400 and 600 dpi printers and scanners (even modules read
	// best), and 0.6 mm, well above what phone cameras resolve at 20 cm.
	// A code too big for QRSize at this size is shrunk to fit.
	ModuleMM      = 25.4 / 40
	qrQuiet       = 4 // modules of white around the code
	qrPixelsPerMd = 4
	PerPage       = Cols * Rows
)

// Cell is where label i sits: its page (0-based) and its top-left corner.
func Cell(i int) (page int, x, y float64) {
	page = i / PerPage
	k := i % PerPage
	return page, MarginLeft + float64(k%Cols)*PitchX, MarginTop + float64(k/Cols)*PitchY
}

// QRBox is the square kept for the QR code (quiet zone included) within a
// label at x, y; the code is centred in it.
func QRBox(x, y float64) (qx, qy, size float64) {
	return x + 2, y + (LabelH-QRSize)/2, QRSize
}

// Fonts are the TrueType fonts a sheet embeds.
type Fonts struct {
	CJK, Latin []byte
}

// Where Debian puts the fonts (fonts-droid-fallback, fonts-dejavu-core,
// fonts-liberation).
var (
	CJKFontPaths   = []string{"/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"}
	LatinFontPaths = []string{"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"}
)

// ErrNoFont: no usable font file.
var ErrNoFont = errors.New("no font for the label sheet")

// LoadFonts reads cjk and latin, or the first of the known paths for each
// left empty.
func LoadFonts(cjk, latin string) (Fonts, error) {
	var f Fonts
	var err error
	if f.CJK, err = firstFile(cjk, CJKFontPaths, "CJK (apt-get install fonts-droid-fallback, or --font-cjk FILE.ttf)"); err != nil {
		return f, err
	}
	if f.Latin, err = firstFile(latin, LatinFontPaths, "Latin (apt-get install fonts-dejavu-core, or --font-latin FILE.ttf)"); err != nil {
		return f, err
	}
	return f, nil
}

func firstFile(given string, defaults []string, what string) ([]byte, error) {
	paths := defaults
	if given != "" {
		paths = []string{given}
	}
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			return b, nil
		} else if given != "" {
			return nil, fmt.Errorf("labels: font %s: %w", given, err)
		}
	}
	return nil, fmt.Errorf("labels: %w: %s", ErrNoFont, what)
}

// How to pair, on every label.
const (
	howTo1 = "1. 接通电源，蓝灯缓慢明暗闪烁"
	howTo2 = "2. 家长用手机扫描二维码"
	howTo3 = "3. 蓝灯闪烁时，孩子按一下大按钮"
)

// Write draws labels onto A4 sheets and writes the PDF to w. created is the
// PDF's date: a batch passes its own, so the same batch gives the same file.
func Write(w io.Writer, labels []Label, fonts Fonts, created time.Time) error {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCreationDate(created)
	pdf.SetModificationDate(created)
	pdf.SetCatalogSort(true)
	pdf.SetAutoPageBreak(false, 0)
	pdf.SetTitle("Tuanju labels", true)
	pdf.AddUTF8FontFromBytes("cjk", "", fonts.CJK)
	pdf.AddUTF8FontFromBytes("latin", "", fonts.Latin)
	if pdf.Err() {
		return fmt.Errorf("labels: fonts: %w", pdf.Error())
	}
	qrs, err := qrImages(labels)
	if err != nil {
		return err
	}
	for i, l := range labels {
		_, x, y := Cell(i)
		if i%PerPage == 0 {
			pdf.AddPage()
		}
		if err := drawLabel(pdf, i, l, qrs[i], x, y); err != nil {
			return err
		}
	}
	if err := pdf.Output(w); err != nil {
		return fmt.Errorf("labels: write PDF: %w", err)
	}
	return nil
}

func drawLabel(pdf *fpdf.Fpdf, i int, l Label, img qrImage, x, y float64) error {
	name := fmt.Sprintf("qr%d", i)
	pdf.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(img.png))
	qx, qy, box := QRBox(x, y)
	side := float64(img.modules) * ModuleMM
	if side > box {
		side = box
	}
	pdf.ImageOptions(name, qx+(box-side)/2, qy+(box-side)/2, side, side, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	tx := qx + box + 1
	tw := x + LabelW - tx - 1.5
	pdf.SetTextColor(0, 0, 0)
	text(pdf, tx, y+6.5, tw, l.Unit, 11)
	text(pdf, tx, y+11.5, tw, l.Site, 7.5)
	text(pdf, tx, y+15.5, tw, l.Child, 7.5)
	text(pdf, tx, y+22, tw, howTo1, 5)
	text(pdf, tx, y+25.5, tw, howTo2, 5)
	text(pdf, tx, y+29, tw, howTo3, 5)
	if pdf.Err() {
		return fmt.Errorf("labels: %s: %w", l.Unit, pdf.Error())
	}
	return nil
}

// latin reports whether r is drawn with the Latin font.
func latin(r rune) bool { return r < 0x2000 }

// text draws s at x, y (baseline) in size pt, switching fonts between Latin
// and CJK runs, shrinking (down to 60%) then cutting it to fit width w.
func text(pdf *fpdf.Fpdf, x, y, w float64, s string, size float64) {
	for scale := 1.0; scale >= 0.6; scale -= 0.1 {
		if width(pdf, s, size*scale) <= w {
			draw(pdf, x, y, s, size*scale)
			return
		}
	}
	size *= 0.6
	for s != "" && width(pdf, s+"…", size) > w {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	draw(pdf, x, y, s+"…", size)
}

// runs splits s into runs of one font.
func runs(s string, f func(font, run string)) {
	start := 0
	cur := ""
	for i, r := range s {
		font := "cjk"
		if latin(r) {
			font = "latin"
		}
		if font != cur && i > start {
			f(cur, s[start:i])
			start = i
		}
		cur = font
	}
	if start < len(s) {
		f(cur, s[start:])
	}
}

func width(pdf *fpdf.Fpdf, s string, size float64) float64 {
	w := 0.0
	runs(s, func(font, run string) {
		pdf.SetFont(font, "", size)
		w += pdf.GetStringWidth(run)
	})
	return w
}

func draw(pdf *fpdf.Fpdf, x, y float64, s string, size float64) {
	runs(s, func(font, run string) {
		pdf.SetFont(font, "", size)
		pdf.Text(x, y, run)
		x += pdf.GetStringWidth(run)
	})
}

// qrPNG is the QR code of url as a 1-bit PNG, qrPixelsPerMd pixels a module
// (a viewer scaling it stays sharp), quiet zone included.
func qrPNG(url string) (qrImage, error) {
	code, err := qrcode.NewWith(url, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
	if err != nil {
		return qrImage{}, err
	}
	var m bitmap
	if err := code.Save(&m); err != nil {
		return qrImage{}, err
	}
	n := len(m)
	side := (n + 2*qrQuiet) * qrPixelsPerMd
	img := image.NewPaletted(image.Rect(0, 0, side, side), color.Palette{color.White, color.Black})
	for my, row := range m {
		for mx, dark := range row {
			if !dark {
				continue
			}
			for dy := 0; dy < qrPixelsPerMd; dy++ {
				line := img.Pix[((my+qrQuiet)*qrPixelsPerMd+dy)*img.Stride:]
				for dx := 0; dx < qrPixelsPerMd; dx++ {
					line[(mx+qrQuiet)*qrPixelsPerMd+dx] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: pngBuffers{}}
	if err := enc.Encode(&buf, img); err != nil {
		return qrImage{}, err
	}
	return qrImage{png: buf.Bytes(), modules: n + 2*qrQuiet}, nil
}

// qrImage is a QR code's PNG and its width in modules, quiet zone included.
type qrImage struct {
	png     []byte
	modules int
}

// pngBuffers reuses PNG encoders' buffers (a compressor is ~1 MiB to
// make): ten thousand labels otherwise spend a fifth of their time
// allocating them.
type pngBuffers struct{}

var pngPool sync.Pool

func (pngBuffers) Get() *png.EncoderBuffer {
	b, _ := pngPool.Get().(*png.EncoderBuffer)
	return b
}
func (pngBuffers) Put(b *png.EncoderBuffer) { pngPool.Put(b) }

// bitmap is a qrcode.Writer that keeps the modules (row by row, true dark).
type bitmap [][]bool

func (b *bitmap) Write(m qrcode.Matrix) error { *b = m.Bitmap(); return nil }
func (b *bitmap) Close() error                { return nil }

// qrImages encodes every label's QR code on all cores: it is most of the
// sheet's cost (BenchmarkBatch10000).
func qrImages(ls []Label) ([]qrImage, error) {
	out := make([]qrImage, len(ls))
	errs := make([]error, len(ls))
	var wg sync.WaitGroup
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = qrPNG(ls[i].URL)
				if errs[i] != nil {
					errs[i] = fmt.Errorf("labels: %s: QR code: %w", ls[i].Unit, errs[i])
				}
			}
		})
	}
	for i := range ls {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}
