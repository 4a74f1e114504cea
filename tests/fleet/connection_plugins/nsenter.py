# Ansible connection to a host that is a set of Linux namespaces on this
# machine (the multi-host test's hosts, tests/e2e_fleet.rs): commands run
# through `nsenter -t PID -a`, files go through /proc/PID/root. Runs as root.
from __future__ import annotations

DOCUMENTATION = """
name: nsenter
short_description: Run tasks inside the namespaces of a process on this machine
description:
  - Enters every namespace (mount, PID, network, UTS, cgroup, IPC) of the
    process C(nsenter_pid) with nsenter(1); files are copied through
    /proc/PID/root. For the deploy-agent multi-host test.
author: deploy-agent authors
options:
  nsenter_pid:
    description: Host PID of the namespace's init.
    type: int
    required: true
    vars:
      - name: ansible_nsenter_pid
"""

import os
import shutil
import subprocess

from ansible.errors import AnsibleError
from ansible.plugins.connection import ConnectionBase


class Connection(ConnectionBase):
    transport = "nsenter"
    has_pipelining = True

    def _pid(self):
        pid = int(self.get_option("nsenter_pid"))
        if not os.path.isdir(f"/proc/{pid}"):
            raise AnsibleError(f"nsenter: no process {pid}")
        return pid

    def _connect(self):
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = ["nsenter", "-t", str(self._pid()), "-a", "--", "/bin/sh", "-c", cmd]
        p = subprocess.run(argv, input=in_data, capture_output=True)
        return p.returncode, p.stdout, p.stderr

    def _inside(self, path):
        return f"/proc/{self._pid()}/root/{path.lstrip('/')}"

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        shutil.copyfile(in_path, self._inside(out_path))

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        shutil.copyfile(self._inside(in_path), out_path)

    def close(self):
        self._connected = False
