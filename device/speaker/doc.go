// Package speaker is the terminal's speaker: short synthesized cues (the
// call's "calling", "ring", "connected", ... sounds) and the parent's voice,
// mixed into one ALSA playback stream.
//
// Cues are made in Go from a few notes each (no sound files): soft
// sine tones with a little second harmonic, either plucked (a bell-like
// attack and decay) or swelled (raised-cosine). "ring" is the one a child
// must notice and like: a rising three-note arpeggio (E5 G5 C6), twice, then
// a pause, repeated. "calling" is a calm double pulse on A4, the sound of
// waiting. "connected" rises (G5 to C6), "hangup" falls (C6 to G5),
// "no_answer" is a gentle descending E5 C5 A4, and "refused" two quiet low
// blips: nothing in the set is harsh or alarming.
//
// The parent's voice arrives as mono 16-bit PCM at 48 kHz on the WebRTC
// track's goroutine (media.ReceiverConfig.OnAudio). WritePCM copies it into a
// bounded jitter buffer and returns at once; the playback goroutine takes a
// period at a time, plays silence when the buffer runs dry (and waits for a
// small cushion before resuming), and drops the oldest audio when it
// overflows, so latency stays bounded.
//
// Cues mix over the voice, which is ducked to half while a cue plays: a cue
// never silences the parent, and the parent never hides a cue. A new cue
// pre-empts the one playing (with a 5 ms fade, no click). "ring" and
// "calling" repeat until another cue or StopCue, for at most the call state
// machine's ring timeouts; the others play once. PlayCueWait returns once a
// cue has actually been heard: its last sample has left the ALSA buffer
// (PCM delay), which is what "open the camera only after the connect sound"
// needs.
//
// With nothing to play for IdleAfter, the stream is stopped (no wake-ups
// while the terminal sits idle) and restarted by the next cue or voice.
package speaker
