package media

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// testPicture is one access unit as the framer should hand it out (Annex
// B) and its packets as an H.264 sender puts them on the wire (single NAL
// units and FU-A fragments at a 300-byte MTU, the marker on the last).
type testPicture struct {
	annexB  []byte
	packets []*rtp.Packet
}

// makePictures packetizes n pictures: the first an IDR with SPS and PPS,
// the rest P slices of 100..1,300 bytes; sequence numbers from seq0, 90 kHz
// timestamps 6,000 apart (15 fps).
func makePictures(t *testing.T, n int, seq0 uint16) []testPicture {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	nal := func(typ byte, size int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.IntN(200) + 1) // no start code inside
		}
		b[0] = 0x60 | typ
		return b
	}
	var pay codecs.H264Payloader
	seq := seq0
	out := make([]testPicture, n)
	for i := range out {
		var nals [][]byte
		if i == 0 {
			nals = [][]byte{nal(7, 12), nal(8, 5), nal(5, 2500)}
		} else {
			nals = [][]byte{nal(1, 100+r.IntN(1200))}
		}
		var au, want []byte
		for _, n := range nals {
			au = append(append(au, 0, 0, 0, 1), n...)
			want = append(append(want, 0, 0, 0, 1), n...)
		}
		payloads := pay.Payload(300, au)
		if len(payloads) == 0 {
			t.Fatal("payloader gave no packets")
		}
		for j, p := range payloads {
			out[i].packets = append(out[i].packets, &rtp.Packet{
				Header:  rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(1000 + 6000*i), Marker: j == len(payloads)-1},
				Payload: p,
			})
			seq++
		}
		out[i].annexB = want
	}
	return out
}

// pushAll pushes packets and returns the pictures popped after each push.
func pushAll(f *framer, pkts []*rtp.Packet) []*picture {
	var got []*picture
	for _, p := range pkts {
		f.push(p)
		for fr := f.pop(); fr != nil; fr = f.pop() {
			got = append(got, fr)
		}
	}
	return got
}

// TestFramerHandsOutAtMarker: each picture comes out the moment its last
// packet is in — pion's samplebuilder, which the receiver used before,
// held it until the next picture's first packet — whole and in Annex B,
// over a sequence-number wrap.
func TestFramerHandsOutAtMarker(t *testing.T) {
	pics := makePictures(t, 6, 65530)
	f := newFramer(45000)
	for i, p := range pics {
		for j, pkt := range p.packets {
			f.push(pkt)
			fr := f.pop()
			last := j == len(p.packets)-1
			if !last && fr != nil {
				t.Fatalf("picture %d handed out after packet %d of %d", i, j+1, len(p.packets))
			}
			if last {
				if fr == nil {
					t.Fatalf("picture %d not handed out when its marker packet came in", i)
				}
				if !bytes.Equal(fr.data, p.annexB) || fr.timestamp != p.packets[0].Timestamp || fr.prevDropped != 0 {
					t.Fatalf("picture %d: %d bytes ts %d dropped %d, want %d bytes ts %d dropped 0",
						i, len(fr.data), fr.timestamp, fr.prevDropped, len(p.annexB), p.packets[0].Timestamp)
				}
			}
		}
	}
}

// TestFramer: reordering, duplicates, loss repaired in time (as by NACK),
// loss given up after maxLate (the next picture says how much was
// dropped; the late packet is then refused), a stream joined in the
// middle of a picture, and a gap wider than the framer holds.
func TestFramer(t *testing.T) {
	const maxLate = 3 * 6000 // three pictures
	pics := makePictures(t, 12, 100)
	all := func(from, to int) []*rtp.Packet {
		var ps []*rtp.Packet
		for _, p := range pics[from:to] {
			ps = append(ps, p.packets...)
		}
		return ps
	}
	without := func(ps []*rtp.Packet, drop *rtp.Packet) []*rtp.Packet {
		var out []*rtp.Packet
		for _, p := range ps {
			if p != drop {
				out = append(out, p)
			}
		}
		return out
	}
	lost := pics[2].packets[1] // a fragment in the middle of picture 2
	shuffled := all(0, 3)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	for _, tc := range []struct {
		name    string
		packets []*rtp.Packet
		want    []int // pictures handed out, in order
		dropped map[int]bool
	}{
		{"in order", all(0, 4), []int{0, 1, 2, 3}, nil},
		{"reordered", shuffled, []int{0, 1, 2}, nil},
		{"duplicates", append(all(0, 2), all(0, 3)...), []int{0, 1, 2}, nil},
		{"loss repaired in time", append(without(all(0, 5), lost), lost), []int{0, 1, 2, 3, 4}, nil},
		// Pictures 3..6 wait behind the hole; at picture 6 the newest
		// packet is 4 pictures newer than picture 2: it is given up, 3..6
		// come out, 3 saying packets were dropped. The lost packet, come
		// at last, is refused.
		{"loss given up", append(without(all(0, 8), lost), lost), []int{0, 1, 3, 4, 5, 6, 7}, map[int]bool{3: true}},
		// Joined in the middle of picture 0: its rest is no picture.
		{"joined mid-picture", all(0, 3)[2:], []int{1, 2}, map[int]bool{1: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pushAll(newFramer(maxLate), tc.packets)
			var idx []int
			for _, fr := range got {
				i := int((fr.timestamp - 1000) / 6000)
				idx = append(idx, i)
				if !bytes.Equal(fr.data, pics[i].annexB) {
					t.Errorf("picture %d: %d bytes, not the %d sent", i, len(fr.data), len(pics[i].annexB))
				}
				if (fr.prevDropped > 0) != tc.dropped[i] {
					t.Errorf("picture %d: prevDropped %d, want dropped before it: %v", i, fr.prevDropped, tc.dropped[i])
				}
			}
			if len(idx) != len(tc.want) {
				t.Fatalf("pictures %v, want %v", idx, tc.want)
			}
			for i := range idx {
				if idx[i] != tc.want[i] {
					t.Fatalf("pictures %v, want %v", idx, tc.want)
				}
			}
		})
	}

	// A sender that starts a new sequence (a track replaced on the same
	// stream) forward or back: the pictures after the jump come out at
	// once, the first saying packets were dropped, without waiting maxLate
	// for the old sequence.
	for _, jump := range []uint16{40000, 20} {
		t.Run(fmt.Sprintf("sequence restarts at %d", jump), func(t *testing.T) {
			f := newFramer(1 << 30) // never gives up by time: only the jump can move on
			before := makePictures(t, 3, 30000)
			after := makePictures(t, 3, jump)
			got := pushAll(f, append(append(before[0].packets, before[1].packets...), before[2].packets[:1]...))
			for _, p := range after {
				for _, pkt := range p.packets {
					pkt.Timestamp += 5 * 6000 // later than before's
				}
			}
			got = append(got, pushAll(f, append(append(after[0].packets, after[1].packets...), after[2].packets...))...)
			if len(got) != 5 {
				t.Fatalf("%d pictures, want 5 (2 before the jump, 3 after)", len(got))
			}
			for i, fr := range got {
				want := before[min(i, 1)].annexB
				if i >= 2 {
					want = after[i-2].annexB
				}
				if !bytes.Equal(fr.data, want) {
					t.Fatalf("picture %d is not the one sent", i)
				}
				if (fr.prevDropped > 0) != (i == 2) {
					t.Fatalf("picture %d: prevDropped %d", i, fr.prevDropped)
				}
			}
		})
	}

	t.Run("gap wider than the framer", func(t *testing.T) {
		f := newFramer(1 << 30) // never gives up by time
		pushAll(f, pics[0].packets[:1])
		// Over framerSlots packets lost: what waited is given up at once and
		// the picture after the gap comes out, saying so.
		far := makePictures(t, 2, 100+framerSlots+50)
		got := pushAll(f, append(far[1].packets, far[1].packets...))
		if len(got) != 1 || !bytes.Equal(got[0].data, far[1].annexB) || got[0].prevDropped == 0 {
			t.Fatalf("got %d pictures; want the one after the gap, saying packets were dropped", len(got))
		}
	})
}
