// Package h264enctest gives tests that need real H.264 pictures to encode,
// without a camera.
package h264enctest

import (
	"image"

	"github.com/pion/mediadevices/pkg/io/video"
)

// Pictures is an endless source of w×h I420 pictures: a gradient with a
// square that moves 2 pixels per picture, so P pictures carry motion.
func Pictures(w, h int) video.Reader {
	n := 0
	return video.ReaderFunc(func() (image.Image, func(), error) {
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for y := range h {
			for x := range w {
				v := byte(x + y)
				if x-2*n%w >= 0 && x-2*n%w < 32 && y >= h/4 && y < h/4+32 {
					v = 235
				}
				img.Y[y*img.YStride+x] = v
			}
		}
		for i := range img.Cb {
			img.Cb[i], img.Cr[i] = byte(96+n%64), 160
		}
		n++
		return img, func() {}, nil
	})
}
