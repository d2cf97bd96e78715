#!/usr/bin/python3
"""Apply a #cloud-config user-data below ROOT the way cloud-init would,
with cloud-init's own write_files module: bootcmd, write_files, runcmd
(systemctl commands are skipped), then bootcmd again as on a second boot.

Every absolute path the commands create is moved below ROOT: the arguments
after "sh -c SCRIPT sh" in bootcmd, the last argument of runcmd commands.
Usage: apply-user-data.py USER_DATA ROOT
"""
import os
import subprocess
import sys

import yaml
from cloudinit.config import cc_write_files


def below(root, p):
    return os.path.join(root, p.lstrip("/"))


def bootcmd(cfg, root):
    for cmd in cfg.get("bootcmd", []):
        assert cmd[:2] == ["sh", "-c"] and cmd[3] == "sh", cmd
        subprocess.run(cmd[:4] + [below(root, p) for p in cmd[4:]], check=True)


def main(user_data, root):
    with open(user_data) as f:
        text = f.read()
    assert text.startswith("#cloud-config\n")
    cfg = yaml.safe_load(text)
    bootcmd(cfg, root)
    # Whatever exists before write_files (the secrets bootcmd pre-created)
    # must be an empty file readable by its owner only.
    for f in cfg.get("write_files", []):
        p = below(root, f["path"])
        if os.path.lexists(p):
            st = os.lstat(p)
            if st.st_mode & 0o777 != 0o600 or st.st_size != 0:
                sys.exit("%s is there before write_files with mode %o" % (f["path"], st.st_mode))
    files = [dict(f, path=below(root, f["path"])) for f in cfg.get("write_files", [])]
    cc_write_files.write_files("write_files", files, "root:root")
    for cmd in cfg.get("runcmd", []):
        if cmd[0] == "systemctl":
            continue
        subprocess.run(cmd[:-1] + [below(root, cmd[-1])], check=True)
    bootcmd(cfg, root)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
