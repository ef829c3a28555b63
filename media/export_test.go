package media

// Open lets media's own tests open sources without a Gate: they test the
// sources, not the announcement. Only tests of this package see it.
var Open = open

// CameraFrames is what the capture's synthetic camera made and what of it
// went on to the encoders.
func (c *Capture) CameraFrames() (made, sent int64) {
	return c.synthCam.Frames(), c.throttle.passed.Load()
}
