"""`slm-appliance bundle`: offline bundles for air-gapped boxes (keygen, create, verify, install)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from appliance.cli.output import print_json
from appliance.config import ApplianceConfig

EPILOG = """On a connected build box:
  slm-appliance bundle keygen --out ~/bundle-keys      keep the .key offline; copy the .pub to each site
  slm-appliance bundle create /media/usb/slm-2026-12 --key ~/bundle-keys/bundle-signing.key \\
      --package dist/slm-appliance_0.1.0-1_amd64.deb --model ./models/my-model.gguf
On the air-gapped box:
  slm-appliance bundle verify /media/usb/slm-2026-12 --pubkey /etc/slm-appliance/bundle-signing.pub
  slm-appliance bundle install /media/usb/slm-2026-12 --pubkey /etc/slm-appliance/bundle-signing.pub
Without the appliance installed yet (stock tools; see docs/packaging.md):
  openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig && sha256sum -c SHA256SUMS
"""
DEFAULT_PUBKEY = Path("/etc/slm-appliance/bundle-signing.pub")


def add_bundle_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bundle = sub.add_parser("bundle", help="signed offline bundles: keygen, create, verify, install",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    keygen = actions.add_parser("keygen", help="make an Ed25519 signing key pair (never overwrites)")
    keygen.add_argument("--out", type=Path, required=True, help="folder for bundle-signing.key and .pub")
    create = actions.add_parser("create", help="gather packages and models into a signed bundle folder")
    create.add_argument("out", type=Path, help="new (or empty) folder to write the bundle into")
    create.add_argument("--key", type=Path, required=True, help="the Ed25519 private key (PEM)")
    create.add_argument("--package", type=Path, action="append", default=[], help=".deb or wheel (repeatable)")
    create.add_argument("--model", type=Path, action="append", default=[],
                        help="GGUF file or HF folder (repeatable)")
    for name, text in (("verify", "check the signature and every file; change nothing"),
                       ("install", "verify in full, then install the packages and stage the models")):
        action = actions.add_parser(name, help=text)
        action.add_argument("bundle", type=Path, help="the bundle folder")
        action.add_argument("--pubkey", type=Path, default=DEFAULT_PUBKEY,
                            help=f"the trusted public key (default {DEFAULT_PUBKEY})")
        if name == "install":
            action.add_argument("--dry-run", action="store_true", help="verify and say what would be done")
    for action in actions.choices.values():
        action.add_argument("--json", action="store_true", help="machine-readable output")


def run_bundle(args: argparse.Namespace, config: ApplianceConfig) -> int:
    from appliance.bundle import bundle
    from appliance.bundle.signing import generate_keypair
    from appliance.errors import ApplianceError

    say = (lambda _line: None) if args.json else (lambda line: print(line, file=sys.stderr))
    try:
        if args.bundle_command == "keygen":
            private, public = args.out / "bundle-signing.key", args.out / "bundle-signing.pub"
            generate_keypair(private, public)
            result: object = {"private_key": str(private), "public_key": str(public)}
        elif args.bundle_command == "create":
            result = bundle.create(args.out, args.key, args.package, args.model, say)
        elif args.bundle_command == "verify":
            result = bundle.verify(args.bundle, args.pubkey, say)
        else:
            imports = config.resolved_state_dir() / "imports"
            result = bundle.install(args.bundle, args.pubkey, imports, say, dry_run=args.dry_run)
    except ApplianceError as exc:
        print(f"slm-appliance: bundle {args.bundle_command}: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print_json(result)
    else:
        print(f"bundle {args.bundle_command}: ok")
    return 0
