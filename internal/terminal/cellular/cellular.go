// Package cellular turns the APN of a unit's provisioning bundle into what
// pppd needs to bring up mobile data over a USB 3G/4G modem's serial AT
// port: a peer options file, the chat script that dials, and the PAP/CHAP
// secrets when the APN has a user. The OS image's network script picks the
// modem's port and starts `pppd <port> 115200 file <peer>`.
//
// This is the generic path every such modem supports (the usb "option"
// serial driver's /dev/ttyUSB*, or a CDC ACM modem's /dev/ttyACM*): the
// PDP context is set with AT+CGDCONT and dialled with ATD*99#. Modems that
// speak only QMI or MBIM, and SIMs locked with a PIN, are not handled.
//
// Nothing from the bundle reaches the files unchecked: bundle.APN.Check
// allows in the name only letters, digits, hyphens and dots (so it cannot
// end the chat script's quotes, or carry chat's escapes \ and ^), and in the
// user and password only printable ASCII without quotes or backslashes, and
// they are written between double quotes: pppd reads each as one word, and
// none can start a line, so none can add a pppd option or a chat command.
package cellular

import (
	"bytes"
	"fmt"

	"github.com/tuanju/tuanju/provisioning/bundle"
)

// Chat is where the OS image (Buildroot's pppd package) and Debian install
// chat; pppd runs the peer file's connect line with it.
const Chat = "/usr/sbin/chat"

// Files are the APN's pppd files. Secrets is nil when the APN has no user
// (pppd then authenticates nothing: most operators' APNs ask for none).
type Files struct {
	Peer    []byte // pppd options: `pppd <port> <speed> file <peer>`
	Chat    []byte // the chat script the peer's connect line runs
	Secrets []byte // pap-secrets and chap-secrets lines (keep it 0600)
}

// header opens every file: it is terminald's, not to be edited.
const header = "# Written by terminald from this unit's provisioning bundle; it is rewritten at every start.\n"

// Make is a's files; chatPath is where the chat script will be, named in
// the peer file's connect line. An APN that fails bundle.APN.Check is an
// error naming the field, and no file is made; so is a chatPath that is not
// an absolute path of plain characters (the connect line is run by sh).
func Make(a bundle.APN, chatPath string) (Files, error) {
	if err := a.Check(); err != nil {
		return Files{}, fmt.Errorf("cellular: %w", err)
	}
	if !plainPath(chatPath) {
		return Files{}, fmt.Errorf("cellular: chat script path %q must be absolute, of letters, digits and / . _ -", chatPath)
	}
	var peer bytes.Buffer
	peer.WriteString(header)
	peer.WriteString(`# The modem's port and speed are on pppd's command line: the network script
# picks the port that answers AT.
# No authentication of the network; its route and DNS servers are the unit's.
noauth
defaultroute
usepeerdns
noipdefault
# Redial for ever, 10 s apart; a link that answers no LCP echo for 4 x 15 s
# is dead (a modem out of coverage keeps the serial line up).
persist
maxfail 0
holdoff 10
lcp-echo-interval 15
lcp-echo-failure 4
`)
	fmt.Fprintf(&peer, "connect \"%s -v -f %s\"\n", Chat, chatPath)
	var secrets []byte
	if a.User != "" {
		fmt.Fprintf(&peer, "user \"%s\"\n", a.User)
		// client, server, secret, addresses: this user's secret for any
		// server, any address.
		secrets = fmt.Appendf([]byte(header), "\"%s\" * \"%s\" *\n", a.User, a.Password)
	}

	var chat bytes.Buffer
	chat.WriteString(header)
	fmt.Fprintf(&chat, `ABORT BUSY
ABORT 'NO CARRIER'
ABORT ERROR
ABORT 'NO DIALTONE'
ABORT 'NO ANSWER'
TIMEOUT 10
'' AT
OK 'AT+CGDCONT=1,"IP","%s"'
OK ATD*99#
TIMEOUT 30
CONNECT ''
`, a.Name)
	return Files{Peer: peer.Bytes(), Chat: chat.Bytes(), Secrets: secrets}, nil
}

// plainPath: absolute, and nothing sh or pppd's quoting would read as more
// than a path.
func plainPath(p string) bool {
	if len(p) < 2 || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
