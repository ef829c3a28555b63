package call

import (
	"slices"
	"testing"

	"github.com/tuanju/tuanju/device/speaker"
)

// The speaker's cue names are the machine's: the terminal passes
// string(Cue) straight through.
func TestCueNamesMatchSpeaker(t *testing.T) {
	want := []string{
		string(CueCalling), string(CueRing), string(CueConnected),
		string(CueNoAnswer), string(CueHangup), string(CueRefused), string(CueReset),
		string(CuePaired), string(CueUnreachable), string(CueDropped), string(CueConnectedVoice),
	}
	slices.Sort(want)
	if got := speaker.Cues(); !slices.Equal(got, want) {
		t.Errorf("speaker.Cues() = %v, want the machine's cues %v", got, want)
	}
}
