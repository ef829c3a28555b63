package h264cam

import (
	"fmt"
)

// SPS is what the passthrough path needs from a sequence parameter set: the
// profile and level to check against what the SDP promised, and the picture
// size to report.
type SPS struct {
	ProfileIDC  byte
	Constraints byte // constraint_set0..5 flags, in the byte's top bits
	LevelIDC    byte
	// Width and Height are the cropped picture size.
	Width, Height int
}

// ProfileLevelID is the SDP profile-level-id (RFC 6184) of the stream: six
// hex digits, profile_idc, constraint flags, level_idc.
func (s SPS) ProfileLevelID() string {
	return fmt.Sprintf("%02x%02x%02x", s.ProfileIDC, s.Constraints, s.LevelIDC)
}

// ConstrainedBaseline reports whether every decoder that takes constrained
// baseline (what the terminal's SDP offers, profile-level-id 42e01f) can
// decode the stream: Baseline with constraint_set1 (no FMO/ASO/redundant
// slices), or Main/Extended with constraint_set1 — which RFC 6184 counts as
// constrained baseline too. Plain Baseline without the flag may use FMO; a
// webcam never does, but the stream does not promise it, so it is refused.
func (s SPS) ConstrainedBaseline() bool {
	const set1 = 0x40
	switch s.ProfileIDC {
	case 66, 77, 88:
		return s.Constraints&set1 != 0
	}
	return false
}

// ParseSPS parses an SPS NAL unit (with its header byte, no start code).
func ParseSPS(nal []byte) (SPS, error) {
	if NALType(nal) != NALSPS {
		return SPS{}, fmt.Errorf("%w: NAL type %d is not an SPS", ErrBadSPS, NALType(nal))
	}
	if len(nal) < 4 {
		return SPS{}, fmt.Errorf("%w: %d bytes", ErrBadSPS, len(nal))
	}
	s := SPS{ProfileIDC: nal[1], Constraints: nal[2], LevelIDC: nal[3]}
	r := &bitReader{b: unescape(nal[4:])}
	r.ue() // seq_parameter_set_id
	chroma := uint(1)
	switch s.ProfileIDC {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.u(1) // separate_colour_plane_flag
		}
		r.ue()           // bit_depth_luma_minus8
		r.ue()           // bit_depth_chroma_minus8
		r.u(1)           // qpprime_y_zero_transform_bypass_flag
		if r.u(1) == 1 { // seq_scaling_matrix_present_flag
			n := 8
			if chroma == 3 {
				n = 12
			}
			for i := range n {
				if r.u(1) == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					last, next := 8, 8
					for range size {
						if next != 0 {
							next = (last + r.se() + 256) % 256
						}
						if next != 0 {
							last = next
						}
					}
				}
			}
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.u(1) // delta_pic_order_always_zero_flag
		r.se() // offset_for_non_ref_pic
		r.se() // offset_for_top_to_bottom_field
		for range r.ue() {
			r.se()
		}
	}
	r.ue() // max_num_ref_frames
	r.u(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := int(r.ue()) + 1
	hMapUnits := int(r.ue()) + 1
	frameMBsOnly := int(r.u(1))
	if frameMBsOnly == 0 {
		r.u(1) // mb_adaptive_frame_field_flag
	}
	r.u(1) // direct_8x8_inference_flag
	s.Width, s.Height = wMBs*16, (2-frameMBsOnly)*hMapUnits*16
	if r.u(1) == 1 { // frame_cropping_flag
		l, rt, t, b := int(r.ue()), int(r.ue()), int(r.ue()), int(r.ue())
		cx, cy := 1, 2-frameMBsOnly // monochrome or 4:4:4
		switch chroma {
		case 1:
			cx, cy = 2, 2*(2-frameMBsOnly)
		case 2:
			cx = 2
		}
		s.Width -= cx * (l + rt)
		s.Height -= cy * (t + b)
	}
	if r.err != nil {
		return SPS{}, fmt.Errorf("%w: %w", ErrBadSPS, r.err)
	}
	if s.Width <= 0 || s.Height <= 0 || s.Width > 8192 || s.Height > 8192 {
		return SPS{}, fmt.Errorf("%w: picture %dx%d", ErrBadSPS, s.Width, s.Height)
	}
	return s, nil
}

// unescape removes emulation prevention bytes (00 00 03 → 00 00).
func unescape(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}

// bitReader reads an RBSP MSB first; reading past the end sets err once.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

func (r *bitReader) u(n int) uint {
	var v uint
	for range n {
		if r.pos >= 8*len(r.b) {
			if r.err == nil {
				r.err = fmt.Errorf("truncated at bit %d", r.pos)
			}
			return 0
		}
		v = v<<1 | uint(r.b[r.pos/8]>>(7-r.pos%8)&1)
		r.pos++
	}
	return v
}

// ue is an unsigned Exp-Golomb code.
func (r *bitReader) ue() uint {
	zeros := 0
	for r.u(1) == 0 {
		if r.err != nil || zeros > 31 {
			if r.err == nil {
				r.err = fmt.Errorf("Exp-Golomb code too long at bit %d", r.pos)
			}
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.u(zeros)
}

// se is a signed Exp-Golomb code.
func (r *bitReader) se() int {
	k := r.ue()
	if k%2 == 1 {
		return int(k+1) / 2
	}
	return -int(k / 2)
}
