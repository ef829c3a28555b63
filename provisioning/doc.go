// Package provisioning will turn a subsidy program's spreadsheet of families
// into device identities, signed per-device bundles, printable QR pairing
// labels and a manifest, resumably. Its first part is devcert: the program CA
// and the device certificates it signs, written to each unit at flash time
// as an identity bundle (see docs/provisioning-keys.md). Until bulk
// provisioning lands, `make demo` and the tests issue identities from a
// development CA, and a unit makes its own pairing secret on first start
// (internal/terminalstore) and prints its pairing link.
package provisioning
