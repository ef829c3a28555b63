package media

import (
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
)

// framerSlots is how many packets a framer holds: at the low profile's
// ~10 packets a picture, over a second of pictures waiting on a lost one.
const framerSlots = 512

// framer puts H.264 RTP packets back together into pictures (access
// units), in sequence order whatever order they came in, and hands each
// out the moment its last packet (the RTP marker) is in.
//
// pion's samplebuilder, which the receiver used before, holds every
// picture until the first packet of the next one has arrived: the child
// saw the parent one picture late (67 ms at 15 fps), and a call's first
// picture waited for its second. It also keeps two 65,536-entry arrays
// (1 MB) per track that every garbage collection scans; this keeps 512
// packets.
//
// A picture with a packet missing is waited for (NACK may bring it back)
// until the newest packet is maxLate newer in RTP time, then given up,
// with the rest of its picture; the next whole picture says how many
// packets were lost or given up before it (prevDropped), and the receiver
// asks for a key frame.
type framer struct {
	slots   [framerSlots]*rtp.Packet // by sequence number modulo framerSlots
	next    uint16                   // the sequence number the next picture starts at
	newest  uint16                   // the newest sequence number held or seen
	started bool
	begun   bool   // a picture has been handed out or given up
	maxLate uint32 // RTP ticks
	dropped int    // packets lost or given up since the last picture handed out
}

// picture is one picture's access unit (Annex B) and its RTP timestamp.
type picture struct {
	data        []byte
	timestamp   uint32
	prevDropped int
}

func newFramer(maxLate uint32) *framer { return &framer{maxLate: maxLate} }

// after reports whether sequence number a comes after b (RFC 3550 wrap).
func after(a, b uint16) bool { return int16(a-b) > 0 }

// push takes one packet. A packet of a picture already handed out or given
// up (late, or a duplicate) is dropped. A packet further than framerSlots
// from the next picture, either way, starts the framer again there: the
// sender began a new sequence (a track replaced on the same stream starts
// at a random number), or more was lost than the framer holds; either way
// nothing held will be completed, and waiting for it would freeze the
// picture for maxLate.
func (f *framer) push(p *rtp.Packet) {
	seq := p.SequenceNumber
	if !f.started {
		f.started, f.next, f.newest = true, seq, seq
	}
	switch d := int(int16(seq - f.next)); {
	case d >= framerSlots || d < -framerSlots:
		f.restart(seq)
	case d < 0 && (f.begun || f.newest-seq >= framerSlots):
		return // before the next picture: already handed out or given up
	case d < 0:
		f.next = seq // the stream's first packets came out of order
	}
	if after(seq, f.newest) {
		f.newest = seq
	}
	f.slots[seq%framerSlots] = p
}

// restart drops everything held and starts at seq; the next picture says
// packets were dropped, so the receiver asks for a key frame.
func (f *framer) restart(seq uint16) {
	clear(f.slots[:])
	f.dropped++
	f.next, f.newest = seq, seq
}

// skipTo gives up every packet before seq, held or missing.
func (f *framer) skipTo(seq uint16) {
	f.begun = true
	for ; f.next != seq; f.next++ {
		f.slots[f.next%framerSlots] = nil
		f.dropped++
	}
}

// pop returns the next whole picture, or nil while it is not in yet.
func (f *framer) pop() *picture {
	for f.started {
		end, whole, ts, ok := f.scan()
		if !ok {
			return nil // nothing held from next on
		}
		if !whole {
			// A packet is missing: wait for it while the newest packet
			// is within maxLate of this picture, then give the picture up
			// and start at the next one's first packet, if it is in.
			newest := f.slots[f.newest%framerSlots]
			if newest == nil || int32(newest.Timestamp-ts) <= int32(f.maxLate) {
				return nil
			}
			nextHead, found := f.nextPicture(ts)
			if !found {
				return nil
			}
			f.skipTo(nextHead)
			continue
		}
		if fr := f.assemble(end, ts); fr != nil {
			return fr
		}
	}
	return nil
}

// scan walks from next: the picture there ends at end (inclusive) when
// whole; ts is its timestamp (of the first packet held from next on, when
// next itself is missing); ok is false when nothing is held from next on.
func (f *framer) scan() (end uint16, whole bool, ts uint32, ok bool) {
	first := f.slots[f.next%framerSlots]
	if first == nil {
		for s := f.next + 1; !after(s, f.newest); s++ {
			if p := f.slots[s%framerSlots]; p != nil {
				return 0, false, p.Timestamp, true
			}
		}
		return 0, false, 0, false
	}
	ts = first.Timestamp
	for s := f.next; ; s++ {
		p := f.slots[s%framerSlots]
		switch {
		case p == nil:
			return 0, false, ts, true
		case p.Timestamp != ts:
			// The picture ended without a marker (a sender that sets
			// none): it is whole, up to the packet before this one.
			return s - 1, true, ts, true
		case p.Marker:
			return s, true, ts, true
		case s == f.newest:
			return 0, false, ts, true // its last packet is not in yet
		}
	}
}

// nextPicture finds the first packet held after next of a picture other
// than the one at ts that starts a picture (a partition head).
func (f *framer) nextPicture(ts uint32) (uint16, bool) {
	var h codecs.H264Packet
	for s := f.next; !after(s, f.newest); s++ {
		if p := f.slots[s%framerSlots]; p != nil && p.Timestamp != ts && h.IsPartitionHead(p.Payload) {
			return s, true
		}
	}
	return 0, false
}

// assemble takes the packets next..end out as one picture. A picture whose
// first packet does not start a NAL unit (its start was lost and the
// picture before it given up), or that does not parse, is dropped (nil).
func (f *framer) assemble(end uint16, ts uint32) *picture {
	var h codecs.H264Packet // fresh: a given-up picture leaves no fragment behind
	head := f.slots[f.next%framerSlots]
	ok := h.IsPartitionHead(head.Payload)
	var data []byte
	n := 0
	for s := f.next; ; s++ {
		p := f.slots[s%framerSlots]
		f.slots[s%framerSlots] = nil
		n++
		if ok {
			nal, err := h.Unmarshal(p.Payload)
			if err != nil {
				ok = false
			}
			data = append(data, nal...)
		}
		if s == end {
			break
		}
	}
	f.next, f.begun = end+1, true
	if !ok || len(data) == 0 {
		f.dropped += n
		return nil
	}
	fr := &picture{data: data, timestamp: ts, prevDropped: f.dropped}
	f.dropped = 0
	return fr
}
