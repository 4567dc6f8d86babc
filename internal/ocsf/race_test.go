//go:build race

package ocsf

// raceEnabled: the race detector makes sync.Pool drop items, so json.Valid
// allocates scanners now and then.
const raceEnabled = true
