package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/tuanju/tuanju/device"
	"github.com/tuanju/tuanju/device/board"
	"github.com/tuanju/tuanju/device/pins"
	"github.com/tuanju/tuanju/internal/cli"
	"github.com/tuanju/tuanju/internal/terminal"
	"github.com/tuanju/tuanju/internal/terminal/autoanswer"
	"github.com/tuanju/tuanju/internal/terminal/call"
	"github.com/tuanju/tuanju/internal/terminal/terminalstore"
	"github.com/tuanju/tuanju/media"
)

// config is terminald's configuration: defaults, then the TOML file, then
// flags. Unknown keys in the file are an error: a typo must not silently fall
// back to a default on a unit in the field.
type config struct {
	ServerURL string `toml:"server_url"`
	// ServerCAFile (PEM) replaces the system's CAs for a wss:// server_url:
	// for a programme whose server has a certificate from its own CA.
	ServerCAFile string `toml:"server_ca_file"`
	PublicURL    string `toml:"public_url"`
	StateFile    string `toml:"state_file"`
	// IdentityFile is the unit's key and device certificate, written once
	// at provisioning, apart from the state file so that damage to the
	// state cannot take the unit's name (terminalstore). Empty: beside the
	// state file (terminalstore.IdentityPath); on the OS image, a
	// provisioning partition.
	IdentityFile string      `toml:"identity_file"`
	Board        string      `toml:"board"` // "sim" or "gpio"
	PanelListen  string      `toml:"panel_listen"`
	LoopbackOnly bool        `toml:"loopback_only"`
	LogFormat    string      `toml:"log_format"` // "text" or "json"
	LogLevel     string      `toml:"log_level"`
	Media        mediaConfig `toml:"media"`
	Pins         pins.Map    `toml:"pins"`
	LongPress    duration    `toml:"long_press"`
	// Watchdog is the hardware watchdog device ("" turns it off). Used on
	// the gpio board only: a developer's machine may have a real one.
	Watchdog        string   `toml:"watchdog"`
	WatchdogTimeout duration `toml:"watchdog_timeout"`
	// Screen is the framebuffer the parent's picture is shown on (gpio board
	// only): "auto" (/dev/fb0 if there is one), a path, or "" for none.
	Screen string `toml:"screen"`
	// Speaker is the ALSA playback device for cues and the parent's voice
	// (gpio board only): "default" (the first card that plays), "hw:CARD,DEV",
	// or "" for none.
	Speaker string `toml:"speaker"`

	// BoardProfile names a built-in board profile (device/board): its pins
	// and device hints apply first, then the file's own keys (profile.go).
	BoardProfile string         `toml:"board_profile"`
	profile      *board.Profile // the applied board profile, nil without one

	// ICE fits calls to a unit behind a static port forward.
	ICE iceConfig `toml:"ice"`

	// AutoAnswer is the reunion window; empty windows (the default) is off.
	AutoAnswer autoAnswerConfig `toml:"auto_answer"`

	// DataBudgetMB is the unit's monthly data budget in MB (10^6 bytes);
	// 0 (the default) is none. A provisioned unit takes its programme's
	// from the bundle when the file leaves it 0 (docs/databudget.md).
	DataBudgetMB int `toml:"data_budget_mb"`

	// ProgrammeKeyFile holds the programme's public signing key(s) (PEM):
	// `identity import` takes a signed bundle only if it verifies against
	// one (docs/provisioning-bundle.md). On the OS image.
	ProgrammeKeyFile string `toml:"programme_key_file"`
	// ProvisioningPartition is the GPT name of the raw partition that holds
	// the unit's signed bundle (the OS image's "provisioning"; "": none):
	// read and verified at every start, imported when new (partition.go).
	ProvisioningPartition string `toml:"provisioning_partition"`
	// WiFiReload is the command (argv) terminald runs when it changed the
	// unit's Wi-Fi configuration (wpa_supplicant.conf beside the bundle):
	// the OS image's ["/usr/lib/tuanju/network", "wifi"]. Empty: none.
	WiFiReload []string `toml:"wifi_reload"`
	// CellularReload is the command (argv) terminald runs when it changed
	// the unit's pppd files for its APN (ppp-peer, ppp-chat, ppp-secrets
	// beside the bundle): the OS image's ["/usr/lib/tuanju/network",
	// "cellular"]. Empty: none.
	CellularReload []string `toml:"cellular_reload"`
	// provisionErr is why the partition's bundle was refused: the daemon
	// then shows needs-repair and does not run the call loop.
	provisionErr error
	// bundle is what the stored provisioning bundle gave (bundle.go).
	bundle *provisionedBundle
}

// autoAnswerConfig is terminal.AutoAnswer as the file spells it:
//
//	[auto_answer]
//	windows = ["Sat 19:00-20:00"]   # local time; see internal/autoanswer
//	delay = "5s"                    # ring first for this long, at least 3s
type autoAnswerConfig struct {
	Windows []string `toml:"windows"`
	Delay   duration `toml:"delay"`
}

// terminal parses the windows; validate has already checked them.
func (c autoAnswerConfig) terminal() (terminal.AutoAnswer, error) {
	sched, err := autoanswer.ParseSchedule(c.Windows)
	if err != nil {
		return terminal.AutoAnswer{}, fmt.Errorf("auto_answer windows: %w", err)
	}
	return terminal.AutoAnswer{Windows: sched, Delay: c.Delay.Duration}, nil
}

// iceConfig is terminal.ICEConfig as the file spells it.
type iceConfig struct {
	Port         int      `toml:"port"`
	AdvertiseIPs []string `toml:"advertise_ips"`
	Networks     []string `toml:"networks"`
}

func (c iceConfig) terminal() terminal.ICEConfig {
	return terminal.ICEConfig{Port: c.Port, AdvertiseIPs: c.AdvertiseIPs, Networks: c.Networks}
}

type mediaConfig struct {
	Profile      string `toml:"profile"`
	Camera       string `toml:"camera"`
	CameraDevice string `toml:"camera_device"`
	// CameraSoftwareEncode sends a camera that encodes H.264 itself
	// through openh264 anyway (media.CaptureConfig.SoftwareEncode).
	CameraSoftwareEncode bool   `toml:"camera_software_encode"`
	Microphone           string `toml:"microphone"`
	// MicrophoneDevice is the ALSA capture device ("default", "hw:CARD,DEV").
	MicrophoneDevice string `toml:"microphone_device"`
}

type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

func defaults() config {
	return config{
		StateFile:       "/var/lib/tuanju/terminal.db",
		Board:           "gpio",
		LogFormat:       "json",
		LogLevel:        "info",
		Media:           mediaConfig{Profile: media.LowData.Name, Camera: media.SourceV4L2, Microphone: media.SourceALSA, MicrophoneDevice: "default"},
		Pins:            pins.DefaultMap(),
		Watchdog:        device.DefaultWatchdogPath,
		WatchdogTimeout: duration{device.DefaultWatchdogTimeout},
		Screen:          board.ScreenAuto,
		Speaker:         "default",
		AutoAnswer:      autoAnswerConfig{Delay: duration{terminal.DefaultAutoAnswerDelay}},
	}
}

// identityFile is identity_file, or its default beside the state file.
func (c config) identityFile() string {
	if c.IdentityFile != "" {
		return c.IdentityFile
	}
	return terminalstore.IdentityPath(c.StateFile)
}

// configUse is what a command needs of the configuration.
type configUse struct {
	name  string // the flag set's: "terminald", "terminald selftest"
	usage string // printed above the flags on -h; "" prints the program's
	// provision: this command reads the provisioning partition first
	// (the daemon), so the bundle it imports fills the config.
	provision bool
	// serverOptional lets server_url be empty: selftest checks the
	// hardware of a unit that has no server yet, and skips the network.
	serverOptional bool
}

// configFlags is the flag set shared by terminald and the subcommands that
// read its configuration: -config and -board-profile, which say where the
// configuration comes from, and one line per flag bound to a field of it,
// applied over the file when given (cli.Overrides).
type configFlags struct {
	*flag.FlagSet
	overrides          *cli.Overrides
	file, boardProfile string
}

func newConfigFlags(use configUse, cfg *config, stderr io.Writer) *configFlags {
	f := &configFlags{FlagSet: flag.NewFlagSet(use.name, flag.ContinueOnError)}
	f.SetOutput(stderr)
	f.Usage = func() {
		if use.usage == "" {
			program().Usage(f.Output())
			return
		}
		fmt.Fprint(f.Output(), use.usage)
		f.PrintDefaults()
	}
	f.StringVar(&f.file, "config", "", "TOML config `file`")
	f.StringVar(&f.boardProfile, "board-profile", "", "built-in board `profile`: "+strings.Join(board.Names(), ", "))
	o := cli.NewOverrides(f.FlagSet)
	o.String("server", &cfg.ServerURL, "rendezvous signalling `URL`, e.g. wss://example.org/ws")
	o.String("public-url", &cfg.PublicURL, "rendezvous address as phones see it (pairing links start with it; default: from -server)")
	o.String("state", &cfg.StateFile, "bbolt state `file`")
	o.String("board", &cfg.Board, `hardware: "gpio" (periph.io) or "sim" (simulated board with a web panel)`)
	o.String("panel", &cfg.PanelListen, "listen `address` of the simulated board's device panel, e.g. 127.0.0.1:8081")
	o.Bool("loopback-only", &cfg.LoopbackOnly, "restrict WebRTC to 127.0.0.1 (tests, local demo)")
	o.String("profile", &cfg.Media.Profile, "media `profile`: normal, low (the default; low-data is its former name), very-low or audio-only")
	o.String("camera", &cfg.Media.Camera, "camera: v4l2, synthetic or none")
	o.String("mic", &cfg.Media.Microphone, "microphone: alsa, synthetic or none")
	o.String("log-format", &cfg.LogFormat, "log `format`: json or text")
	f.overrides = o
	return f
}

// loadConfig is the daemon's configuration: defaults, the file named by
// -config, then the flags given. extra registers a subcommand's own flags
// on the same flag set.
func loadConfig(args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (config, error) {
	return loadConfigFor(configUse{name: "terminald"}, args, stderr, extra...)
}

// loadConfigFor is loadConfig for a command that says what it needs.
func loadConfigFor(use configUse, args []string, stderr io.Writer, extra ...func(*flag.FlagSet)) (config, error) {
	cfg := defaults()
	fs := newConfigFlags(use, &cfg, stderr)
	for _, f := range extra {
		f(fs.FlagSet)
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%s: unexpected arguments %q (flags go before them; see %s -h)", use.name, fs.Args(), use.name)
	}
	if err := applyFile(&cfg, fs.file, fs.boardProfile); err != nil {
		return cfg, err
	}
	fs.overrides.Apply()
	if use.provision && cfg.ProvisioningPartition != "" {
		cfg.provisionErr = provisionFromPartition(cfg, io.Discard)
	}
	applyBundle(&cfg)
	if cfg.PublicURL == "" && cfg.ServerURL != "" {
		cfg.PublicURL = publicFromServer(cfg.ServerURL)
	}
	// A refused bundle leaves the server unknown; the daemon only shows
	// needs-repair then.
	return cfg, cfg.validate(use.serverOptional || cfg.provisionErr != nil)
}

// maxDataBudgetMB bounds data_budget_mb: what the protocol can carry
// (protocol.MaxBudgetBytes, 1 TB).
const maxDataBudgetMB = 1_000_000

// publicFromServer guesses the web address from the signalling URL.
func publicFromServer(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.Scheme = map[string]string{"wss": "https", "ws": "http"}[u.Scheme]
	u.Path = ""
	return u.String()
}

// validate checks every value and reports all that are wrong. serverOptional
// accepts an empty server_url (but never a wrong one).
func (c config) validate(serverOptional bool) error {
	var errs []error
	switch u, err := url.Parse(c.ServerURL); {
	case c.ServerURL == "" && serverOptional: // selftest: the network check says it skipped
	case c.ServerURL == "" || err != nil || (u.Scheme != "ws" && u.Scheme != "wss"):
		errs = append(errs, fmt.Errorf("server_url %q must be a ws:// or wss:// URL", c.ServerURL))
	}
	if c.StateFile == "" {
		errs = append(errs, errors.New("state_file is empty"))
	}
	switch c.Board {
	case "sim":
	case "gpio":
		if err := c.Pins.Validate(); err != nil {
			errs = append(errs, err)
		}
	default:
		errs = append(errs, fmt.Errorf("board %q must be gpio or sim", c.Board))
	}
	if _, err := media.ProfileByName(c.Media.Profile); err != nil {
		errs = append(errs, err)
	}
	switch c.Media.Camera {
	case media.SourceV4L2, media.SourceSynthetic, media.SourceNone:
	default:
		errs = append(errs, fmt.Errorf("camera %q must be v4l2, synthetic or none", c.Media.Camera))
	}
	switch c.Media.Microphone {
	case media.SourceALSA, media.SourceSynthetic, media.SourceNone:
	default:
		errs = append(errs, fmt.Errorf("microphone %q must be alsa, synthetic or none", c.Media.Microphone))
	}
	if c.Watchdog != "" && c.WatchdogTimeout.Duration < 5*time.Second {
		errs = append(errs, fmt.Errorf("watchdog_timeout %v must be at least 5s (the loop pets it every second)", c.WatchdogTimeout.Duration))
	}
	if err := c.ICE.terminal().Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.AutoAnswer.terminal(); err != nil {
		errs = append(errs, err)
	}
	if d := c.AutoAnswer.Delay.Duration; d < call.MinAutoAnswerDelay {
		errs = append(errs, fmt.Errorf("auto_answer delay %v must be at least %v: the child must see and hear the ring first", d, call.MinAutoAnswerDelay))
	}
	if c.DataBudgetMB < 0 || c.DataBudgetMB > maxDataBudgetMB {
		errs = append(errs, fmt.Errorf("data_budget_mb %d must be 0 (none) to %d", c.DataBudgetMB, maxDataBudgetMB))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("log_format %q must be json or text", c.LogFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("terminald: config: %w", err)
	}
	return nil
}
