// Package alsa plays and captures 16-bit PCM through the Linux kernel's ALSA
// PCM interface directly: open /dev/snd/pcmC<card>D<dev>{p,c}, negotiate the
// hardware parameters with the HW_REFINE/HW_PARAMS ioctls, and move
// interleaved S16_LE frames with WRITEI_FRAMES/READI_FRAMES.
//
// Why not alsa-lib: the terminal is one static binary, Debian ships no static
// libasound, and mediadevices' malgo driver (which dlopens libasound) crashes
// a static binary at start-up. The kernel interface is small and stable
// (protocol 2.0.x since Linux 2.6), and this package uses only the part a
// voice appliance needs: "hw:" devices, S16_LE, interleaved, 1–2 channels.
// There is no plug layer: no format or rate conversion. Open asks for the
// caller's rate and takes the nearest one the hardware has, and reports it
// (Params.Rate); converting is the caller's business.
//
// Devices are named like alsa-lib's: "hw:CARD,DEV[,SUB]" where CARD is the
// card's index or its id ("Loopback", from /proc/asound/cards or
// /sys/class/sound/cardN/id), "hw:CARD" meaning device 0, and "default" (or
// "") the first card that has a PCM of the wanted direction. List enumerates
// cards and their PCM devices through the control devices, without opening
// (or disturbing) any PCM.
//
// I/O is non-blocking underneath, parked on Go's poller: Read and Write block
// the calling goroutine until all frames moved, and Close from any goroutine
// makes them return ErrClosed. Overruns and underruns (EPIPE) are recovered by
// re-preparing the stream, a suspend (ESTRPIPE) by RESUME or, failing that,
// PREPARE; both are counted (PCM.Xruns) and logged, never returned.
//
// Struct layouts follow the kernel's UAPI (include/uapi/sound/asound.h) with
// C's "unsigned long" as Go's uint, so the same declarations are right for
// amd64 and arm64 (LP64: snd_pcm_hw_params is 608 bytes) and for 32-bit armv7
// (ILP32: 604 bytes); the ioctl numbers are computed from the sizes. The
// ioctl encoding is the asm-generic one (x86, arm, arm64, riscv); mips,
// powerpc and sparc encode ioctls differently and are not supported, nor is
// any big-endian machine (the interval bit-fields are little-endian).
package alsa
