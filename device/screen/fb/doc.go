// Package fb shows pictures on a Linux framebuffer (/dev/fbN): the small SPI
// LCD some terminals have, or any display a DRM driver exposes through its
// fbdev emulation. The child sees the parent here.
//
// The path is deliberately the oldest and plainest the kernel has: two
// ioctls to learn the mode (FBIOGET_VSCREENINFO, FBIOGET_FSCREENINFO), one
// mmap of the screen memory, and plain stores into it. Every fbdev driver
// (fbtft and tinydrm panels, simplefb, DRM fbdev emulation, vfb in the test
// VM) supports it, and it needs no library.
//
// Pixels are packed from the red/green/blue bitfields the driver reports,
// never from an assumed layout: an ILI9341 panel under fbtft is RGB565 with
// red at bit 11, vfb's 16 bpp mode has red at bit 0, DRM emulation is
// XRGB8888. Format describes a layout; Canvas draws into any buffer of one.
//
// Draw scales a picture to fit the screen keeping its aspect ratio, with
// black bars (letterbox). Decoded video arrives as *image.YCbCr (I420 from
// the H.264 decoder); for it Draw converts and scales in one pass, with
// lookup tables and precomputed sampling positions, and allocates nothing
// once the picture size is known: on a cheap ARM core at 15 fps the
// conversion is most of what showing video costs.
//
// Frames are drawn into a back buffer in RAM and then copied into the screen
// memory with one copy, so a half-converted picture is never visible. When
// the driver offers a virtual screen twice as high, the copy goes to the
// hidden half and FBIOPAN_DISPLAY flips to it.
//
// Display is the interface the terminal uses; fbtest.Display is its
// in-memory fake.
package fb
