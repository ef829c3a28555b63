package simboard

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"net/http"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"
)

//go:embed panel.html
var panelHTML []byte

// qrSize is the pairing QR image's side in pixels: big enough for a phone
// camera to read off a laptop screen.
const qrSize = 320

// Handler serves the device panel and its API:
//
//	GET  /                     the panel page
//	GET  /api/state            State as JSON
//	POST /api/button/press     short press (returns when released)
//	POST /api/button/hold      button down
//	POST /api/button/release   button up
//	POST /api/button/longpress long press (returns when released)
//	GET  /camera.jpg           latest preview frame (404 without camera)
//	GET  /screen.jpg           what the terminal's screen shows (404 without one)
//	GET  /pairing.png          QR code of the pairing URL (404 without one)
//
// The panel plays the cues (State.Cue, State.CueSeq) with WebAudio, and
// polls the two pictures only while the lights say in_call.
//
// The panel is a development tool and should be served on loopback only.
// Cross-origin browser requests are refused (http.CrossOriginProtection), so
// a web page the developer visits cannot press the button; curl and Go
// clients, which send no Origin, are unaffected.
func (b *Board) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", b.servePanel)
	mux.HandleFunc("GET /api/state", b.serveState)
	mux.HandleFunc("POST /api/button/press", b.buttonAction(func(r *http.Request) error { return b.Press(r.Context()) }))
	mux.HandleFunc("POST /api/button/hold", b.buttonAction(func(*http.Request) error { return b.Hold() }))
	mux.HandleFunc("POST /api/button/release", b.buttonAction(func(*http.Request) error { return b.Release() }))
	mux.HandleFunc("POST /api/button/longpress", b.buttonAction(func(r *http.Request) error { return b.LongPress(r.Context()) }))
	mux.HandleFunc("POST /api/camera/unplug", b.buttonAction(func(*http.Request) error { b.camera.Unplug(); return nil }))
	mux.HandleFunc("POST /api/camera/replug", b.buttonAction(func(*http.Request) error { b.camera.Replug(); return nil }))
	mux.HandleFunc("GET /camera.jpg", b.serveJPEG("camera", b.preview))
	mux.HandleFunc("GET /screen.jpg", b.serveJPEG("screen", b.screen))
	mux.HandleFunc("GET /pairing.png", b.servePairingQR)
	return http.NewCrossOriginProtection().Handler(mux)
}

func (b *Board) servePanel(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(panelHTML)
}

func (b *Board) serveState(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(b.State()); err != nil {
		b.log.Debug("panel state write failed", "err", err)
	}
}

func (b *Board) buttonAction(act func(*http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := act(r); err != nil {
			status := http.StatusInternalServerError
			switch {
			case errors.Is(err, ErrClosed):
				status = http.StatusServiceUnavailable
			case r.Context().Err() != nil:
				return // client gone; the button was released anyway
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// serveJPEG serves the latest image from src (the camera preview, the
// screen) as a JPEG, or 404 when the board has no such device (nil src) or
// it has no image now.
func (b *Board) serveJPEG(what string, src func() image.Image) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if src == nil {
			http.Error(w, "simboard: no "+what, http.StatusNotFound)
			return
		}
		img := src()
		if img == nil {
			http.Error(w, "simboard: no "+what+" image now", http.StatusNotFound)
			return
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 75}); err != nil {
			b.log.Error("panel image encode failed", "image", what, "err", err)
			http.Error(w, "simboard: encode "+what+" image: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(buf.Bytes())
	}
}

func (b *Board) servePairingQR(w http.ResponseWriter, _ *http.Request) {
	img, err := b.pairingQR()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if img == nil {
		http.Error(w, "simboard: no pairing URL", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(img)
}

// pairingQR returns the PNG of the current pairing URL's QR code, or nil
// when there is no URL. It is cached per URL: the panel polls it.
func (b *Board) pairingQR() ([]byte, error) {
	b.mu.Lock()
	u, cachedURL, cached := b.pairingURL, b.qrURL, b.qrPNG
	b.mu.Unlock()
	if u == "" {
		return nil, nil
	}
	if u == cachedURL {
		return cached, nil
	}
	code, err := qr.Encode(u, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("simboard: pairing QR: %w", err)
	}
	code, err = barcode.Scale(code, qrSize, qrSize)
	if err != nil {
		return nil, fmt.Errorf("simboard: pairing QR: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, code); err != nil {
		return nil, fmt.Errorf("simboard: pairing QR: %w", err)
	}
	b.mu.Lock()
	if b.pairingURL == u {
		b.qrURL, b.qrPNG = u, buf.Bytes()
	}
	b.mu.Unlock()
	return buf.Bytes(), nil
}
