package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/boombuler/barcode/qr"
)

// printQR draws a QR code with Unicode half blocks, two modules a character
// high, so a technician can scan the pairing link straight off a terminal
// window or a serial console.
func printQR(w io.Writer, text string) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		fmt.Fprintf(w, "(cannot draw QR code: %v)\n", err)
		return
	}
	n := code.Bounds().Dx()
	const quiet = 2
	dark := func(x, y int) bool {
		if x < 0 || y < 0 || x >= n || y >= n {
			return false
		}
		r, _, _, _ := code.At(x, y).RGBA()
		return r == 0
	}
	var b strings.Builder
	for y := -quiet; y < n+quiet; y += 2 {
		for x := -quiet; x < n+quiet; x++ {
			top, bottom := dark(x, y), dark(x, y+1)
			// Light modules are drawn as full blocks so the code reads on a
			// dark terminal background.
			switch {
			case !top && !bottom:
				b.WriteRune('█')
			case !top && bottom:
				b.WriteRune('▀')
			case top && !bottom:
				b.WriteRune('▄')
			default:
				b.WriteRune(' ')
			}
		}
		b.WriteByte('\n')
	}
	io.WriteString(w, b.String())
}
