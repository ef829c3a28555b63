package fb

import "image"

// Fit returns where a picture of size src goes on a screen of size dst: as
// large as fits with its aspect ratio kept, centred, so what is left over
// becomes black bars (letterbox above and below, pillarbox left and right).
// It is empty if either size is.
func Fit(src, dst image.Point) image.Rectangle {
	if src.X <= 0 || src.Y <= 0 || dst.X <= 0 || dst.Y <= 0 {
		return image.Rectangle{}
	}
	w, h := dst.X, dst.Y
	// Compare the aspect ratios without division: src.X/src.Y vs dst.X/dst.Y.
	if src.X*dst.Y > dst.X*src.Y {
		// Wider than the screen: full width, bars above and below.
		h = (src.Y*dst.X + src.X/2) / src.X
	} else {
		// Taller (or the same shape): full height, bars at the sides.
		w = (src.X*dst.Y + src.Y/2) / src.Y
	}
	w, h = max(w, 1), max(h, 1)
	x0, y0 := (dst.X-w)/2, (dst.Y-h)/2
	return image.Rect(x0, y0, x0+w, y0+h)
}

// samplePositions fills pos with, for each of the n output pixels of a span
// scaled from m input pixels, the input pixel nearest to its centre:
// floor((i+0.5)·m/n). Upscaling repeats pixels, downscaling skips them
// evenly; the first and last output pixels map to near the input's edges.
func samplePositions(pos []int32, m, n int) {
	for i := range n {
		pos[i] = int32(min((2*i+1)*m/(2*n), m-1))
	}
}
