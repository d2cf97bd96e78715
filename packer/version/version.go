// Package version is the version of packer-plugin-hardway, reported to
// Packer by `packer-plugin-hardway describe`.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

// Version and VersionPrerelease are set at link time by a release build:
//
//	go build -ldflags "-X github.com/hardway-dev/hardway/packer/version.Version=0.2.0 \
//	  -X github.com/hardway-dev/hardway/packer/version.VersionPrerelease="
//
// Packer installs releases (0.2.0) and development builds (0.2.0-dev) only.
var (
	Version           = "0.1.0"
	VersionPrerelease = "dev"
)

// PluginVersion is the version the plugin set reports.
var PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, "")
