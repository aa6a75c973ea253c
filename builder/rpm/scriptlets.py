"""Scriptlet bodies (POSIX sh), written out the way Fedora's macros expand.

Debian's rpm has no %systemd_* or %sysusers_create_compat macros, and RHEL 9's
need a helper Debian lacks, so every scriptlet is spelled out here:
preset on first install, `disable --now` on erase, daemon-reload and
try-restart on upgrade. `$1` is rpm's count of instances after the action.
"""

from __future__ import annotations

import shlex

from builder import layout
from builder.site import Site

SYSTEMCTL = "/usr/bin/systemctl"
# Only a booted systemd can reload or restart; in a chroot or image build it cannot.
_BOOTED = "[ -d /run/systemd/system ]"


# CIS gives root umask 077 and dnf passes it to scriptlets: set it, so nothing a scriptlet
# creates is unreadable to the airflow user by accident (rpm sets its payload's modes itself).
UMASK = "umask 022\n"
# build-venv's work space beside the venvs (uv's binary, its cache beyond the files hard-linked
# into the venv, sdist build environments): /tmp and /var/tmp may be noexec, so none of it is there.
WORK_KB = 256 * 1024
FAPOLICYD_CLI = "/usr/sbin/fapolicyd-cli"
TRUST_FILE = layout.FAPOLICYD_TRUST


def _q(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


def _daemon_reload() -> str:
    return f"if {_BOOTED}; then {SYSTEMCTL} daemon-reload >/dev/null 2>&1 || :; fi\n"


def units_post(units: list[str], firewalld: bool = False) -> str:
    body = UMASK + _daemon_reload()
    body += f"if [ $1 -eq 1 ]; then\n    {SYSTEMCTL} --no-reload preset {_q(*units)} >/dev/null 2>&1 || :\nfi\n"
    if firewalld:
        # New service definitions become known to a running firewalld; no port is opened.
        body += "if [ -x /usr/bin/firewall-cmd ]; then /usr/bin/firewall-cmd --reload --quiet >/dev/null 2>&1 || :; fi\n"
    return body


def units_preun(units: list[str]) -> str:
    return (f"if [ $1 -eq 0 ]; then\n    {SYSTEMCTL} --no-reload disable --now {_q(*units)} >/dev/null 2>&1 || :\n"
            "fi\n")


def restart_on_upgrade(units: list[str]) -> str:
    # --no-block: systemd restarts them after the transaction; no rpm transaction (dnf-automatic,
    # Satellite remote execution) holds the rpm lock while workers drain and schemas migrate.
    return (f"if [ $1 -ge 1 ] && {_BOOTED}; then\n"
            f"    {SYSTEMCTL} try-restart --no-block {_q(*units)} >/dev/null 2>&1 || :\nfi\n")


def units_postun(units: list[str]) -> str:
    return _daemon_reload() + restart_on_upgrade(units)


def base_pre(site: Site, venv_kb: int) -> str:
    """Preconditions, then the user and group.

    A failing %pre stops this package's installation, unlike a failing %post,
    so everything the venv build needs is checked here, before any file lands.
    """
    p = site.paths
    py = site.target.interpreter
    minor = tuple(int(x) for x in site.target.python_minor.split("."))
    U, G, W = layout.SERVICE_USER, layout.SERVICE_GROUP, layout.WORKER_USER
    return UMASK + f"""\
# Preconditions, checked before anything is installed (a failing %post would not stop dnf).
if ! {py} -I -c 'import sys; sys.exit(sys.version_info[:2] != {minor!r})' >/dev/null 2>&1; then
    echo "airflow-prod: {py} is missing or is not Python {site.target.python_minor}: install python{site.target.python_minor} first" >&2
    exit 1
fi
venv_kb={venv_kb}
work_kb={WORK_KB}
need_kb=$((venv_kb + work_kb))
avail_kb=$({py} -I -c 'import os, sys
p = sys.argv[1]
while not os.path.isdir(p):
    p = os.path.dirname(p)
s = os.statvfs(p)
print(s.f_bavail * s.f_frsize // 1024)' {shlex.quote(p.venvs)})
if [ "$avail_kb" -lt "$need_kb" ]; then
    echo "airflow-prod: "{shlex.quote(p.venvs)}" needs $need_kb KiB free for a new virtualenv ($venv_kb KiB) and its build's work space beside it ($work_kb KiB), only $avail_kb KiB are: free space first" >&2
    exit 1
fi
if [ -e {shlex.quote(p.venv)} ] && [ ! -L {shlex.quote(p.venv)} ]; then
    echo "airflow-prod: "{shlex.quote(p.venv)}" exists and is not a symlink (a hand-made venv?): move it away first" >&2
    exit 1
fi
# The user and group of {layout.SYSUSERS} (rpm 4.16 does not read sysusers files).
getent group {G} >/dev/null || groupadd -r {G}
getent passwd {U} >/dev/null || \\
    useradd -r -g {G} -d {shlex.quote(p.home)} -s /sbin/nologin -c "Apache Airflow" {U}
getent passwd {W} >/dev/null || \\
    useradd -r -g {G} -d {shlex.quote(p.home)} -s /sbin/nologin -c "Apache Airflow Celery worker and tasks" {W}
exit 0
"""


def base_post(site: Site) -> str:
    p = site.paths
    secrets, tmpfiles, build_venv = layout.secrets_path(site), layout.TMPFILES, layout.BUILD_VENV
    # Only what this package made: its directories themselves (not the logs or DAGs in them,
    # which may be large or an NFS mount) and the venvs build-venv wrote.
    own = [d.path for d in layout.site_dirs(site)]
    return UMASK + f"""\
if [ -x /usr/bin/systemd-tmpfiles ]; then
    /usr/bin/systemd-tmpfiles --create {shlex.quote(tmpfiles)} >/dev/null 2>&1 || :
fi
if [ $1 -eq 1 ]; then
    {SYSTEMCTL} --no-reload preset airflow.target >/dev/null 2>&1 || :
fi
{selinux_fcontext_add(site)}# Build the new venv beside the old one; {p.venv} switches only when it is complete.
if ! {build_venv}; then
    cat >&2 <<'BANNER'
########################################################################
airflow-prod: THE AIRFLOW VIRTUALENV WAS NOT BUILT. Services keep running on
the previous venv (if any). The package is installed but NOT usable until
this is fixed. Log: {layout.BUILD_VENV_LOG}
Fix the cause, then run: {build_venv}
########################################################################
BANNER
    exit 1
fi
{selinux_relabel(*own, recursive=False)}{selinux_relabel(p.venvs)}if [ ! -e {shlex.quote(secrets)} ]; then
    echo "airflow-prod: "{shlex.quote(secrets)}" is missing: install the site's secrets file (root:root 0600) before starting airflow.target" >&2
fi
exit 0
"""


def selinux_relabel(*paths: str, recursive: bool = True) -> str:
    """restorecon [-R] when SELinux is enabled (files made in %post get their directory's label)."""
    flag = "-R " if recursive else ""
    return (f"if [ -x /usr/sbin/selinuxenabled ] && /usr/sbin/selinuxenabled && [ -x /usr/sbin/restorecon ]; then\n"
            f"    /usr/sbin/restorecon {flag}{_q(*paths)} || :\nfi\n")


# Trees whose default SELinux labels systemd may execute (RHEL targeted policy: /opt is usr_t with
# bin_t for .../bin, /usr is bin_t/lib_t/usr_t). Elsewhere (/srv, /var, /home, /data, ...) a unit
# executing the venv fails with 203/EXEC under enforcing unless the path is labelled.
SELINUX_EXEC_TREES = ("/opt", "/usr")
SEMANAGE = "/usr/sbin/semanage"


def selinux_fcontext_rules(site: Site) -> list[tuple[str, str]]:
    """(type, path regex) rules giving venvs outside /opt and /usr the labels /opt has."""
    venvs = site.paths.venvs
    if any(venvs.startswith(tree + "/") for tree in SELINUX_EXEC_TREES):
        return []
    return [("usr_t", f"{venvs}(/.*)?"), ("bin_t", f"{venvs}/[^/]+/bin(/.*)?")]


def selinux_fcontext_add(site: Site) -> str:
    """%post, before the venv build: the rules, or a loud stop if SELinux is on and semanage is not."""
    rules = selinux_fcontext_rules(site)
    if not rules:
        return ""
    adds = "".join(f"    {SEMANAGE} fcontext -a -t {t} {shlex.quote(r)} 2>/dev/null || "
                   f"{SEMANAGE} fcontext -m -t {t} {shlex.quote(r)}\n" for t, r in rules)
    venvs = site.paths.venvs
    return (f"if [ -x /usr/sbin/selinuxenabled ] && /usr/sbin/selinuxenabled; then\n"
            f"  if [ -x {SEMANAGE} ]; then\n{adds}"
            f"  else\n"
            f"    echo \"airflow-prod: SELinux is enabled and {venvs} is outside /opt and /usr: units would fail "
            f"with 203/EXEC. Install policycoreutils-python-utils (semanage), then reinstall airflow-prod\" >&2\n"
            f"    exit 1\n"
            f"  fi\nfi\n")


def selinux_fcontext_delete(site: Site) -> str:
    rules = selinux_fcontext_rules(site)
    if not rules:
        return ""
    return "".join(f"    if [ -x {SEMANAGE} ]; then {SEMANAGE} fcontext -d {shlex.quote(r)} >/dev/null 2>&1 || :; fi\n"
                   for _, r in rules)


def fapolicyd_forget() -> str:
    """On erase: the venvs' trust file goes with them, and a running fapolicyd reloads."""
    return (f"    if [ -e {TRUST_FILE} ]; then\n"
            f"        rm -f {TRUST_FILE}\n"
            f"        if [ -x {FAPOLICYD_CLI} ]; then {FAPOLICYD_CLI} --update >/dev/null 2>&1 || :; fi\n"
            f"    fi\n")


def base_postun(site: Site) -> str:
    p = site.paths
    return UMASK + _daemon_reload() + restart_on_upgrade(["airflow.target"]) + f"""\
if [ $1 -eq 0 ]; then
    # Erase: the venvs are generated and go, and fapolicyd's trust in them; the user, DAGs,
    # logs, plugins, security files and edited configuration stay.
    rm -f {shlex.quote(p.venv)}
    rm -rf {shlex.quote(p.venvs)}
{fapolicyd_forget()}{selinux_fcontext_delete(site)}fi
exit 0
"""
