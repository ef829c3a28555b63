package alsa

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Device is one PCM device of a sound card, as List reports it.
type Device struct {
	Card     int    // card index: the N of /dev/snd/controlCN
	CardID   string // the card's id, e.g. "Loopback"
	CardName string // e.g. "Loopback"
	Device   int    // the D of pcmCNDD
	ID       string // the PCM's id
	Name     string // the PCM's name, e.g. "Loopback PCM"
	// PlaybackSubdevices and CaptureSubdevices count the substreams of each
	// direction; 0 means the device has no such direction.
	PlaybackSubdevices int
	CaptureSubdevices  int
}

// Has reports whether d has the direction s.
func (d Device) Has(s Stream) bool { return d.subdevices(s) > 0 }

func (d Device) subdevices(s Stream) int {
	if s == Capture {
		return d.CaptureSubdevices
	}
	return d.PlaybackSubdevices
}

// HWName is d's "hw:ID,DEV" name (by card id, which survives USB cards
// changing index between boots).
func (d Device) HWName() string {
	return Addr{Card: d.Card, CardID: d.CardID, Device: d.Device, Subdevice: -1}.String()
}

// Addr is a resolved PCM address.
type Addr struct {
	Card      int
	CardID    string // may be empty when resolved by index alone
	Device    int
	Subdevice int // -1: the first free one
}

// String returns the canonical name, "hw:ID,DEV[,SUB]" (or by index when
// the id is unknown).
func (a Addr) String() string {
	card := a.CardID
	if card == "" {
		card = strconv.Itoa(a.Card)
	}
	s := fmt.Sprintf("hw:%s,%d", card, a.Device)
	if a.Subdevice >= 0 {
		s += "," + strconv.Itoa(a.Subdevice)
	}
	return s
}

// path is the PCM's device node in dir.
func (a Addr) path(dir string, s Stream) string {
	return filepath.Join(dir, fmt.Sprintf("pcmC%dD%d%c", a.Card, a.Device, s.suffix()))
}

// name is a parsed device name, not yet checked against the cards.
type name struct {
	isDefault bool
	card      string // index or id
	device    int
	subdevice int // -1: any
}

// parseName parses "default", "" (the same), "hw:CARD", "hw:CARD,DEV" and
// "hw:CARD,DEV,SUB". alsa-lib's key form "hw:CARD=Loopback,DEV=1,SUBDEV=2" is
// accepted too. Plugin names (plughw:, dmix:, ...) are not: there is no
// alsa-lib configuration here.
func parseName(s string) (name, error) {
	bad := func(why string) (name, error) {
		return name{}, fmt.Errorf("alsa: device %q: %s: %w", s, why, ErrBadName)
	}
	if s == "" || s == "default" {
		return name{isDefault: true, subdevice: -1}, nil
	}
	rest, ok := strings.CutPrefix(s, "hw:")
	if !ok {
		return bad(`want "default" or "hw:CARD[,DEV[,SUB]]" (no alsa-lib plugins)`)
	}
	parts := strings.Split(rest, ",")
	if len(parts) > 3 {
		return bad("too many fields")
	}
	keys := []string{"CARD=", "DEV=", "SUBDEV="}
	for i := range parts {
		parts[i] = strings.TrimPrefix(strings.TrimSpace(parts[i]), keys[i])
	}
	n := name{card: parts[0], subdevice: -1}
	if n.card == "" {
		return bad("empty card")
	}
	num := func(v, what string) (int, error) {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 || i > 255 {
			return 0, fmt.Errorf("alsa: device %q: %s %q is not a number 0..255: %w", s, what, v, ErrBadName)
		}
		return i, nil
	}
	var err error
	if len(parts) > 1 {
		if n.device, err = num(parts[1], "device"); err != nil {
			return name{}, err
		}
	}
	if len(parts) > 2 {
		if n.subdevice, err = num(parts[2], "subdevice"); err != nil {
			return name{}, err
		}
	}
	return n, nil
}

// resolve finds the device a name means among devs (from List). "default"
// is the first device (lowest card, then device) with direction s.
func resolve(s string, stream Stream, devs []Device) (Addr, error) {
	n, err := parseName(s)
	if err != nil {
		return Addr{}, err
	}
	if n.isDefault {
		for _, d := range devs {
			if d.Has(stream) {
				return Addr{Card: d.Card, CardID: d.CardID, Device: d.Device, Subdevice: -1}, nil
			}
		}
		return Addr{}, fmt.Errorf("alsa: default: no %s device among %d: %w", stream, len(devs), ErrNoDevice)
	}
	cardIdx, numeric := -1, false
	if i, err := strconv.Atoi(n.card); err == nil {
		cardIdx, numeric = i, true
	}
	var card []Device
	for _, d := range devs {
		if (numeric && d.Card == cardIdx) || (!numeric && strings.EqualFold(d.CardID, n.card)) {
			card = append(card, d)
		}
	}
	if len(card) == 0 {
		return Addr{}, fmt.Errorf("alsa: %s: no card %q with PCM devices: %w", s, n.card, ErrNoDevice)
	}
	for _, d := range card {
		if d.Device != n.device {
			continue
		}
		a := Addr{Card: d.Card, CardID: d.CardID, Device: d.Device, Subdevice: n.subdevice}
		switch count := d.subdevices(stream); {
		case count == 0:
			return Addr{}, fmt.Errorf("alsa: %s has no %s: %w", s, stream, ErrNoDevice)
		case n.subdevice >= count:
			return Addr{}, fmt.Errorf("alsa: %s: %s has %d subdevices: %w", s, stream, count, ErrNoDevice)
		}
		return a, nil
	}
	return Addr{}, fmt.Errorf("alsa: %s: card %q has no PCM device %d: %w", s, card[0].CardID, n.device, ErrNoDevice)
}
