"""Nova's fake virt driver, with a real guest for the servers that ask.

The dev cloud runs nova-compute with `compute_driver =
devcloud_guest.GuestDriver` (compute.py names this module
nova.virt.devcloud_guest: Nova 2025.1 loads drivers from nova.virt only). Every server is the fake driver's
(no hypervisor, ACTIVE within a poll) except a server whose flavor has
the extra spec `devcloud:guest=qemu` (the seeded flavor vdi-guest): for
that one, spawn downloads the server's image from Glance, as a real
driver does, and boots it in its own QEMU (TCG, -vga std, the image as
the first IDE hard disk under SeaBIOS) with SPICE on a port of its own,
and get_spice_console (so Nova's spice-direct and console-auth-token
answers) gives that port. The lane's harness/guest image repaints on
every key and counts keys at 0x7E00; each server's guest counts its own.

Servers of other flavors keep the fake driver's console
(fakespiceconsole.com, 6969, TLS 6970), where the tests put one QEMU of
their own, so the simulated cases that boot many servers at once cost no
guest each.

SPICE as the lane's single QEMU has it: 127.0.0.1, no ticketing (the
proxy in front, Kerbside, holds the password), and a TLS port when the
x509 directory DEVCLOUD_GUEST_X509 holds ca-cert.pem, server-cert.pem
and server-key.pem (the cloud tests write the lane's there before they
boot); without it the console has no TLS port, and Kerbside (which
reaches hypervisors over TLS only) refuses it.

Environment (devcloud.sh sets it):
  DEVCLOUD_NOVA_STATE       Nova's state_path; guests live in its guests/<uuid>/
  DEVCLOUD_CONSOLE_HOST     the console host name Nova hands out (127.0.0.1 in the namespace)
  DEVCLOUD_GUEST_PORT_BASE  first SPICE port of the guests (28400)
  DEVCLOUD_GUEST_PORTS      how many ports, plain and TLS in pairs (100: 50 guests)
  DEVCLOUD_GUEST_X509       the x509 directory for the guests' TLS port

A guest's QEMU runs under `setpriv --pdeathsig KILL`, so it dies with
nova-compute; its pid and start time are in guests/<uuid>/qemu.pid, which
devcloud.sh down reads to check that no guest outlives the cloud.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from oslo_log import log as logging

from nova.compute import power_state
from nova.console import type as ctype
from nova import exception
from nova.image import glance
from nova.virt import fake

LOG = logging.getLogger(__name__)

EXTRA_SPEC = "devcloud:guest"
QEMU = "/usr/bin/qemu-system-x86_64"
MEMORY_MIB = 32  # a boot sector; the flavor's RAM is not reserved
READY_TIMEOUT = 60.0  # seconds from QEMU's start to the guest's own screen
STOP_TIMEOUT = 5.0


def _starttime(pid):
    """The process's start time (field 22 of /proc/PID/stat), which a
    reused pid does not share; None when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Guest(object):
    """One server's QEMU: its directory, ports and process."""

    def __init__(self, uuid, directory, disk, disk_format, port, tls_port):
        self.uuid = uuid
        self.dir = directory
        self.disk = disk
        self.disk_format = disk_format
        self.port = port
        self.tls_port = tls_port
        self.proc = None

    @property
    def qmp_path(self):
        return os.path.join(self.dir, "qmp.sock")

    def args(self, x509):
        spice = "port=%d,addr=127.0.0.1,disable-ticketing=on" % self.port
        if self.tls_port:
            spice += ",tls-port=%d,x509-dir=%s" % (self.tls_port, x509)
        return ["setpriv", "--pdeathsig", "KILL", "--", QEMU,
                "-nodefaults", "-no-user-config", "-name", "devcloud-" + self.uuid,
                "-accel", "tcg", "-m", str(MEMORY_MIB),
                "-drive", "format=%s,file=%s,if=ide,index=0,media=disk" % (self.disk_format, self.disk),
                "-boot", "c", "-vga", "std", "-display", "none", "-nic", "none",
                "-spice", spice,
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]

    def start(self, x509):
        t0 = time.monotonic()
        log = open(os.path.join(self.dir, "qemu.log"), "ab")
        try:
            self.proc = subprocess.Popen(self.args(x509), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, close_fds=True,
                                         env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        finally:
            log.close()
        with open(os.path.join(self.dir, "qemu.pid"), "w") as f:
            f.write("%d %s\n" % (self.proc.pid, _starttime(self.proc.pid)))
        try:
            spice_at = self._wait(t0, self._spice_answers, "its SPICE port")
            screen_at = self._wait(t0, self._guest_painted, "the guest's own screen")
        except Exception:
            self.stop()
            raise
        return spice_at, screen_at

    def _wait(self, t0, ready, what):
        while True:
            if self.proc.poll() is not None:
                raise exception.NovaException(
                    "devcloud guest %s: QEMU exited (status %s) before %s: %s"
                    % (self.uuid, self.proc.returncode, what, self.log_tail()))
            if ready():
                return time.monotonic() - t0
            if time.monotonic() - t0 > READY_TIMEOUT:
                raise exception.NovaException(
                    "devcloud guest %s: no %s within %.0f s: %s" % (self.uuid, what, READY_TIMEOUT, self.log_tail()))
            time.sleep(0.05)

    def _spice_answers(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def _guest_painted(self):
        """The guest's first paint puts '>' at the top left of the text
        screen (SeaBIOS's own screen starts with "SeaBIOS")."""
        try:
            out = self.hmp("xp /1xb 0xb8000")
        except (OSError, ValueError, KeyError):
            return False
        return out.strip().endswith("0x3e")

    def hmp(self, line):
        """One HMP command through QMP (a connection of its own, closed
        after: QEMU serves one QMP client at a time)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(self.qmp_path)
            f = s.makefile("rwb")
            json.loads(f.readline())  # greeting
            for cmd in ({"execute": "qmp_capabilities"},
                        {"execute": "human-monitor-command", "arguments": {"command-line": line}}):
                f.write(json.dumps(cmd).encode() + b"\n")
                f.flush()
                while True:
                    msg = json.loads(f.readline())
                    if "return" in msg or "error" in msg:
                        break
            return msg["return"]
        finally:
            s.close()

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "qemu.log"), "rb") as f:
                return f.read()[-600:].decode(errors="replace").strip() or "(no output)"
        except OSError as e:
            return "(no log: %s)" % e

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM (QEMU exits cleanly), then SIGKILL after STOP_TIMEOUT."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while self.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        try:
            os.unlink(os.path.join(self.dir, "qemu.pid"))
        except FileNotFoundError:
            pass


class GuestDriver(fake.FakeDriver):
    """FakeDriver that runs a real QEMU guest for servers whose flavor has
    devcloud:guest=qemu (see the module's doc)."""

    capabilities = dict(fake.FakeDriver.capabilities, supports_image_type_qcow2=True)

    def __init__(self, virtapi, read_only=False):
        super(GuestDriver, self).__init__(virtapi, read_only)
        self._guests = {}
        self._lock = threading.Lock()
        self._root = os.path.join(os.environ["DEVCLOUD_NOVA_STATE"], "guests")
        self._console_host = os.environ.get("DEVCLOUD_CONSOLE_HOST", "fakespiceconsole.com")
        self._port_base = int(os.environ.get("DEVCLOUD_GUEST_PORT_BASE", "28400"))
        self._ports = int(os.environ.get("DEVCLOUD_GUEST_PORTS", "100"))
        self._x509 = os.environ.get("DEVCLOUD_GUEST_X509", "")

    def init_host(self, host):
        super(GuestDriver, self).init_host(host)
        # A nova-compute that died took its guests with it (pdeathsig);
        # its directories are forgotten, as the fake driver forgets its
        # instances.
        os.makedirs(self._root, exist_ok=True)
        for name in os.listdir(self._root):
            self._kill_orphan(os.path.join(self._root, name))
            shutil.rmtree(os.path.join(self._root, name), ignore_errors=True)

    def _kill_orphan(self, directory):
        try:
            with open(os.path.join(directory, "qemu.pid")) as f:
                pid, start = f.read().split()
        except (OSError, ValueError):
            return
        if _starttime(int(pid)) == start:
            LOG.warning("devcloud guest: killing QEMU %s left by an earlier nova-compute", pid)
            os.kill(int(pid), signal.SIGKILL)

    @staticmethod
    def wants_guest(instance):
        return (instance.flavor.extra_specs or {}).get(EXTRA_SPEC) == "qemu"

    def _tls_ready(self):
        return bool(self._x509) and all(
            os.path.isfile(os.path.join(self._x509, n)) for n in ("ca-cert.pem", "server-cert.pem", "server-key.pem"))

    def _free_pair(self):
        """The first pair of ports (plain, TLS) in the range that no guest
        of ours holds and that nothing else listens on."""
        used = {p for g in self._guests.values() for p in (g.port, g.tls_port)}
        for port in range(self._port_base, self._port_base + self._ports - 1, 2):
            if port in used or port + 1 in used:
                continue
            if all(self._bindable(p) for p in (port, port + 1)):
                return port, port + 1
        raise exception.NovaException(
            "devcloud guest: no free SPICE ports in %d-%d (DEVCLOUD_GUEST_PORTS)"
            % (self._port_base, self._port_base + self._ports - 1))

    @staticmethod
    def _bindable(port):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        if self.wants_guest(instance):
            self._spawn_guest(context, instance, image_meta, power_on)
        super(GuestDriver, self).spawn(context, instance, image_meta, injected_files, admin_password,
                                       allocations, network_info, block_device_info, power_on, accel_info)

    def _spawn_guest(self, context, instance, image_meta, power_on):
        t0 = time.monotonic()
        fmt = image_meta.disk_format
        if fmt not in ("raw", "qcow2"):
            raise exception.NovaException("devcloud guest: image %s is %s; raw or qcow2 boot" % (image_meta.id, fmt))
        directory = os.path.join(self._root, instance.uuid)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        disk = os.path.join(directory, "disk." + fmt)
        glance.API().download(context, image_meta.id, dest_path=disk)
        downloaded = time.monotonic() - t0
        with self._lock:
            port, tls_port = self._free_pair()
            g = Guest(instance.uuid, directory, disk, fmt, port, tls_port if self._tls_ready() else None)
            self._guests[instance.uuid] = g
        if not power_on:
            return
        try:
            spice_at, screen_at = g.start(self._x509)
        except Exception:
            with self._lock:
                self._guests.pop(instance.uuid, None)
            shutil.rmtree(directory, ignore_errors=True)
            raise
        LOG.info("devcloud guest up: SPICE port %d, TLS port %s; image downloaded in %.2f s, QEMU's SPICE "
                 "answered %.2f s and the guest painted %.2f s after its start; spawn %.2f s",
                 g.port, g.tls_port, downloaded, spice_at, screen_at, time.monotonic() - t0, instance=instance)

    def _stop_guest(self, instance, forget):
        with self._lock:
            g = self._guests.pop(instance.uuid, None) if forget else self._guests.get(instance.uuid)
        if g is None:
            return
        g.stop()
        if forget:
            shutil.rmtree(g.dir, ignore_errors=True)
        LOG.info("devcloud guest stopped%s", " and removed" if forget else "", instance=instance)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._stop_guest(instance, forget=True)
        super(GuestDriver, self).destroy(context, instance, network_info, block_device_info,
                                         destroy_disks, destroy_secrets)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._stop_guest(instance, forget=False)
        super(GuestDriver, self).power_off(instance, timeout, retry_interval)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        super(GuestDriver, self).power_on(context, instance, network_info, block_device_info,
                                          accel_info, share_info)
        g = self._guests.get(instance.uuid)
        if g is not None and not g.alive():
            g.start(self._x509)

    def get_info(self, instance, use_cache=True):
        info = super(GuestDriver, self).get_info(instance, use_cache)
        g = self._guests.get(instance.uuid)
        if g is not None and info.state == power_state.RUNNING and not g.alive():
            # The guest's QEMU is gone: say so, Nova marks the server SHUTOFF.
            self.instances[instance.uuid].state = power_state.SHUTDOWN
            return super(GuestDriver, self).get_info(instance, use_cache)
        return info

    def get_spice_console(self, context, instance):
        g = self._guests.get(instance.uuid)
        if g is None:
            return super(GuestDriver, self).get_spice_console(context, instance)
        if not g.alive():
            raise exception.InstanceNotReady(instance_id=instance.uuid)
        return ctype.ConsoleSpice(host=self._console_host, port=g.port, tlsPort=g.tls_port)
