// Package netwatch tells the terminal when the unit's network changed: an
// address or a route appeared (a DHCP lease on wlan0 after wpa_supplicant
// joined, a cable plugged back in, pppd's link up). The terminal then
// tries the server at once instead of at the end of a reconnect backoff
// that may have grown to half a minute while the network was away — a
// child pressing the button in that half minute would see "no network" on
// a unit whose network had come back.
//
// It listens to the kernel's rtnetlink notifications (RTNLGRP_IPV4_IFADDR,
// IPV6_IFADDR, IPV4_ROUTE, IPV6_ROUTE, LINK) on one socket: no polling.
package netwatch
