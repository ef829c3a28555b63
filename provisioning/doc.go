// Package provisioning turns a subsidy programme's spreadsheet of families
// into ready-to-ship terminals (docs/provisioning.md). Its packages:
//
//   - devcert: the program CA, device certificates, identity bundles;
//   - programme: the programme's directory: CA generations and the signing
//     key, encrypted with a passphrase, and the files the server needs;
//   - signing: the Ed25519 key that signs bundles and manifests;
//   - bundle: the signed, versioned, length-checked per-unit bundle;
//   - batch: a families CSV checked whole, then units issued resumably from
//     a journal, bundles, the label sheet and the manifests written;
//   - labels: the A4 label sheet (QR code, unit ID, site, how to pair);
//   - manifest: a batch's signed list of units, for the server;
//   - flash: the OS image and a unit's bundle onto an SD card, read back
//     and checked.
//
// cmd/provision wires them; terminald imports bundles, the rendezvous server
// imports manifests.
package provisioning
