#!/usr/bin/env python3
"""One command from nothing to a reachable KVM@TACC host for the GourmetGram lab, and back.

  python provision/lease.py up --key-name mykey   # lease m1.xlarge, boot, open ports, floating IP, inventory
  python provision/lease.py status                # read-only: lease window, time left, server, IP, groups
  python provision/lease.py extend --hours 2      # best effort; KVM@TACC may refuse for flavor leases
  python provision/lease.py down                  # server, floating IP, lease, inventory

Credentials: a KVM@TACC application credential ("Unrestricted"), either as OS_* variables (source the
openrc file the dashboard gives you) or as a clouds.yaml entry (--os-cloud NAME or OS_CLOUD). The site is
fixed: auth URL https://kvm.tacc.chameleoncloud.org:5000/v3, region KVM@TACC.

Progress and logs go to stderr; the result goes to stdout (JSON with --json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as `python provision/lease.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provision import chameleon as ch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = REPO_ROOT / "inventory" / "chameleon.yml"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("common options")
    g.add_argument("--os-cloud", metavar="NAME", help="clouds.yaml entry to use (default: $OS_CLOUD, else OS_* vars)")
    g.add_argument(
        "--user",
        metavar="NETID",
        help="your user id for the server name lab-4-data-platform-NETID "
        "(default: $GG_NETID, $OS_USERNAME, else the Keystone user name)",
    )
    g.add_argument("--lease-name", default=ch.DEFAULT_LEASE_NAME, help="lease name (default: %(default)s)")
    g.add_argument("--lease-id", help="use this lease id instead of looking the lease up by name")
    g.add_argument(
        "--inventory",
        type=Path,
        default=DEFAULT_INVENTORY,
        help="generated inventory (default: inventory/chameleon.yml)",
    )
    g.add_argument(
        "--key-file",
        default=os.environ.get("GG_KEY_FILE", ch.DEFAULT_KEY_FILE),
        help="private key path written to the inventory (default: $GG_KEY_FILE or %(default)s)",
    )
    g.add_argument("--json", action="store_true", help="print a JSON document on stdout (errors too)")
    w = common.add_argument_group("waiting")
    w.add_argument("--poll-interval", type=float, default=10.0, metavar="S", help="seconds between polls (10)")
    w.add_argument("--lease-timeout", type=float, default=900.0, metavar="S", help="wait for lease ACTIVE (900)")
    w.add_argument("--server-timeout", type=float, default=900.0, metavar="S", help="wait for server ACTIVE (900)")
    w.add_argument("--delete-timeout", type=float, default=300.0, metavar="S", help="wait for server deletion (300)")
    w.add_argument(
        "--ssh-timeout", type=float, default=600.0, metavar="S", help="wait for SSH before the inventory (600)"
    )
    w.add_argument(
        "--http-timeout",
        type=float,
        default=ch.HTTP_TIMEOUT,
        metavar="S",
        help="limit for each HTTP call to KVM@TACC (%(default)g)",
    )

    parser = argparse.ArgumentParser(
        prog="lease.py",
        description=__doc__,
        epilog=ch.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{up,status,extend,down}")

    up = sub.add_parser(
        "up",
        parents=[common],
        help="create or complete everything (idempotent)",
        epilog=ch.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--hours", type=float, default=ch.DEFAULT_HOURS, help="lease length for a new lease (4)")
    up.add_argument(
        "--key-name",
        default=os.environ.get("GG_KEY_NAME"),
        help="KVM@TACC key pair name (default: $GG_KEY_NAME); required",
    )
    up.add_argument("--public-key", metavar="FILE", help="import this public key as --key-name if it is missing")
    up.add_argument("--cidr", help="source CIDR for rules this tool creates (default: 0.0.0.0/0)")
    up.add_argument("--wait-ssh", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts

    sub.add_parser(
        "status",
        parents=[common],
        help="read-only report; exit 0 when ready, 8 when not",
        epilog=ch.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    ext = sub.add_parser(
        "extend",
        parents=[common],
        help="push the lease end later (best effort)",
        epilog=ch.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ext.add_argument("--hours", type=float, default=ch.DEFAULT_HOURS, help="hours to add (4)")

    down = sub.add_parser(
        "down",
        parents=[common],
        help="delete server, floating IP, lease and inventory",
        epilog=ch.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    down.add_argument(
        "--delete-groups",
        action="store_true",
        help="also delete the security groups this tool created, when no port uses them",
    )
    return parser


def _options(args: argparse.Namespace, env: Mapping[str, str]) -> ch.Options:
    raw_user = args.user or env.get("GG_NETID") or env.get("OS_USERNAME") or ""
    for name in ("poll_interval", "lease_timeout", "server_timeout", "delete_timeout", "ssh_timeout"):
        if getattr(args, name) < 0:
            raise ch.ConfigError(f"--{name.replace('_', '-')} must not be negative")
    if args.http_timeout <= 0:
        raise ch.ConfigError("--http-timeout must be positive")
    hours = getattr(args, "hours", ch.DEFAULT_HOURS)
    if hours <= 0:
        raise ch.ConfigError("--hours must be positive")
    return ch.Options(
        user=ch.sanitize_user(raw_user) if raw_user else "",
        lease_name=args.lease_name,
        lease_id=args.lease_id,
        hours=hours,
        key_name=getattr(args, "key_name", None),
        key_file=args.key_file,
        public_key_file=getattr(args, "public_key", None),
        cidr=getattr(args, "cidr", None),
        inventory=args.inventory,
        delete_groups=getattr(args, "delete_groups", False),
        poll_interval=args.poll_interval,
        lease_timeout=args.lease_timeout,
        server_timeout=args.server_timeout,
        delete_timeout=args.delete_timeout,
        ssh_timeout=args.ssh_timeout,
        http_timeout=args.http_timeout,
    )


def _print_human(command: str, result: dict[str, Any]) -> None:
    if command == "status":
        le, srv = result.get("lease"), result.get("server")
        if le:
            left = le.get("seconds_left")
            when = f"{ch.human_delta(left)} left" if left is not None else "end unknown"
            print(
                f"lease     {le['name']} ({le['id']}) {le['status']}  "
                f"{ch.fmt_dt(le.get('start'))} -> {ch.fmt_dt(le.get('end'))}  ({when}; "
                "the server is deleted when the lease ends)"
            )
        else:
            print("lease     none")
        if srv:
            fault = f"  fault: {srv['fault']}" if srv.get("fault") else ""
            print(f"server    {srv['name']} ({srv['id']}) {srv['status']}{fault}")
        else:
            print("server    none")
        print(f"address   {result.get('floating_ip') or 'none'}")
        for ip in result.get("orphan_floating_ips", []):
            print(f"          {ip} (this tool's, not attached; `up` re-uses it, `down` releases it)")
        groups = result.get("security_groups", {})
        missing = [n for n, g in groups.items() if not g["exists"]]
        detached = [n for n, g in groups.items() if g["exists"] and not g["attached"]]
        print(
            f"groups    {len(groups) - len(missing)}/{len(groups)} exist"
            + (f", not attached: {', '.join(detached)}" if srv and detached else "")
            + (f", missing: {', '.join(missing)}" if missing else "")
        )
        inv = result.get("inventory", {})
        print(f"inventory {inv.get('path')} ({inv.get('state')})")
        if result.get("private_address"):
            print(f"private   {result['private_address']} (services bind this; the floating IP is NAT'd)")
        advice = result.get("advice")
        if result.get("ready"):
            print("ready" + (f"; note: {advice}" if advice else ""))
        else:
            print(f"not ready: {advice or 'run `lease.py up` to complete'}")
        return
    changes = result.get("changes", [])
    if not changes:
        print("Nothing to do: " + ("everything is already in place." if command == "up" else "nothing left to delete."))
    else:
        print(f"{len(changes)} change(s):")
        for c in changes:
            print(f"  - {c}")
    if command == "up":
        ip = result.get("floating_ip")
        print(
            f"Host {result.get('server', {}).get('name')} at {ip}; lease ends "
            f"{ch.fmt_dt((result.get('lease') or {}).get('end_date'))} (the server is deleted then)."
        )
        print(f"  private address {result.get('private_address')} (services bind it; Neutron NATs {ip} to it)")
        print(f"  ssh -i {result.get('key_file')} cc@{ip}")
        print(f"  ansible-playbook -i {result.get('inventory')} site.yml")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, **hooks: Any) -> int:
    """CLI entry point. ``hooks`` (sleep, clock, now, stage_hook, ssh_probe) are for tests."""
    env = os.environ if env is None else env
    # openstacksdk warns about its own internal calls (e.g. find_image); not actionable for users.
    warnings.filterwarnings("ignore", module=r"openstack\.")
    warnings.filterwarnings("ignore", message=r".*(ignore_missing|_compute_attributes|service_type).*")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and 2
    command = args.command
    prov: ch.Provisioner | None = None
    try:
        opts = _options(args, env)
        cred = ch.find_credential(args.os_cloud, env)
        cloud = ch.Cloud(cred, timeout=opts.http_timeout)
        ch.log(f"KVM@TACC: authenticating with the application credential from {cred.source}")
        cloud.authenticate()
        if not opts.user:
            access = cloud.session.auth.get_access(cloud.session)
            if not access.username:
                raise ch.ConfigError("cannot tell your user id: pass --user NETID or set GG_NETID")
            opts.user = ch.sanitize_user(access.username.split("@")[0])
        ch.log(f"lease {opts.lease_name!r}, server {opts.server_name!r}")
        prov = ch.Provisioner(cloud, opts, **hooks)
        if command == "up":
            state = prov.up()
            result: dict[str, Any] = {
                "command": "up",
                "changed": bool(state.changes),
                "changes": state.changes,
                "notes": state.notes,
                "lease": state.lease,
                "reservation_id": state.reservation_id,
                "server": state.server,
                "floating_ip": state.floating_ip,
                "private_address": state.private_address,
                "security_groups": state.security_groups,
                "inventory": state.inventory,
                "key_file": str(Path(opts.key_file).expanduser()),
            }
            code = 0
        elif command == "status":
            result = {"command": "status", **prov.status()}
            code = 0 if result["ready"] else ch.EXIT_NOT_READY
        elif command == "extend":
            lease = prov.extend(opts.hours)
            result = {"command": "extend", "changed": True, "changes": prov.state.changes, "lease": lease}
            code = 0
        else:
            state = prov.down()
            result = {
                "command": "down",
                "changed": bool(state.changes),
                "changes": state.changes,
                "notes": state.notes,
            }
            code = 0
    except KeyboardInterrupt:
        stage = prov.stage if prov else "start"
        msg = f"interrupted after stage {stage!r}; nothing is lost: `up` completes what exists, `down` removes it"
        return _fail(args, ch.EXIT_INTERRUPTED, "interrupted", msg)
    except Exception as exc:
        doing = f"{command}" + (f" (after stage {prov.stage})" if prov and command == "up" else "")
        err = ch.translate_error(exc, doing)
        if err is None:
            return _fail(args, 1, "failure", f"{doing}: unexpected {type(exc).__name__}: {exc}")
        return _fail(args, err.exit_code, err.kind, str(err))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        _print_human(command, result)
    return code


def _fail(args: argparse.Namespace, code: int, kind: str, message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"command": args.command, "error": {"kind": kind, "exit_code": code, "message": message}}))
    return code


if __name__ == "__main__":
    sys.exit(main())
