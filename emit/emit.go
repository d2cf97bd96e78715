// Package emit turns a node's file tree into its output formats: a rootfs
// directory, a reproducible overlay tar, NoCloud cloud-init (and its seed ISO)
// and Ignition. Every format carries exactly the tree's entries.
package emit

import (
	"os"
	"strconv"
	"time"
)

// Epoch is the modification time of every emitted entry: SOURCE_DATE_EPOCH
// when set (reproducible-builds.org), else the Unix epoch.
func Epoch() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil {
			return time.Unix(v, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}
