# Runs cloud-init's own locale module (cc_locale, Debian's distro) on
# user-data, writing the locale file at argv[2] instead of
# /etc/default/locale: update-locale and, unless cloud-init skips it,
# locale-gen run for real, as on a node's first boot.
import logging
import sys

import yaml
from cloudinit import helpers
from cloudinit.config import cc_locale
from cloudinit.distros import debian


class Cloud:
    def __init__(self, distro):
        self.distro = distro

    def get_locale(self):
        return self.distro.get_locale()


with open(sys.argv[1]) as f:
    cfg = yaml.safe_load(f)
cfg["locale_configfile"] = sys.argv[2]
distro = debian.Distro("debian", {}, helpers.Paths({}))
cc_locale.handle("locale", cfg, Cloud(distro), logging.getLogger("locale"), [])
