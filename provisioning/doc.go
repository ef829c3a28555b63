// Package provisioning will turn a subsidy program's spreadsheet of families
// into device identities, signed per-device bundles, printable QR pairing
// labels and a manifest, resumably. It is empty until the bulk-provisioning
// work lands; until then a terminal makes its own identity and pairing
// secret on first start (internal/terminalstore) and prints its pairing link.
package provisioning
