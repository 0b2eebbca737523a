"""``warden attest verify``: check an SEV-SNP attestation report against AMD's certificate chain;
``warden signer attest``: this signer's evidence (a report binding its keys, or ``tee=none`` and why).

Prints each check (parse, the chain VCEK → ASK → ARK against the root shipped for the processor
generation, the report's signature, guest policy, TCB, launch measurement, report_data) and exits
1 if any failed, so a customer can check a signer's report without trusting the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from infra.cli.output import add_json_flag, fail, print_json
from infra.client import sealing_keys
from runtime.config import load
from runtime.trust import PinnedServiceKeys
from signer.attestation import evidence
from signer.attestation.verify import PRODUCTS, Expectations, Tcb, report_data_binding, verify_report


def _tcb(text: str) -> Tcb:
    try:
        bootloader, tee, snp, microcode = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("the minimum TCB is BOOTLOADER,TEE,SNP,MICROCODE, e.g. 3,0,8,115") from None
    return Tcb(bootloader, tee, snp, microcode)


def _hex(size: int):
    def parse(text: str) -> bytes:
        try:
            value = bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            value = b""
        if len(value) != size:
            raise argparse.ArgumentTypeError(f"must be {size} bytes of hex ({2 * size} digits)")
        return value
    return parse


def cmd_verify(args) -> int:
    try:
        raw, vcek = Path(args.report).read_bytes(), Path(args.vcek).read_bytes()
    except OSError as exc:
        return fail("warden attest verify", exc, 2)
    expect = Expectations(product=args.product, measurements=tuple(args.expect_measurement or ()),
                          minimum_tcb=args.minimum_tcb, allow_debug=args.allow_debug,
                          allow_smt=not args.refuse_smt, allow_migration_agent=args.allow_migration_agent,
                          report_data=args.expect_report_data)
    result = verify_report(raw, vcek, expect)
    if args.json:
        report = result.report
        print_json({"ok": result.ok, "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
                    "report": None if report is None else {
                        "version": report.version, "vmpl": report.vmpl, "policy": hex(report.policy),
                        "measurement": report.measurement.hex(), "report_data": report.report_data.hex(),
                        "reported_tcb": str(Tcb.decode(report.reported_tcb, args.product)),
                        "chip_id": report.chip_id.hex(), "signing_key": report.signing_key}})
    else:
        for check in result.checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:12} {check.detail}")
        print("the report verifies" if result.ok else f"the report does not verify: {len(result.failures)} check(s) "
                                                      "failed")
    return 0 if result.ok else 1


def cmd_signer_attest(args) -> int:
    """The running signer's keys (its announced sealing key, its pinned service key) bound with a
    nonce into report_data, and the evidence this machine gives for them."""
    settings = load()
    signer_id = settings.signer_id
    announced = {k.signer_id: k for k in asyncio.run(sealing_keys(settings, timeout_s=args.wait))}.get(signer_id)
    if announced is None:
        return fail("warden signer attest", f"signer {signer_id!r} has announced no sealing key on "
                                            "warden.signer.sealing; is it running (`warden up`)?", 2)
    service = PinnedServiceKeys(settings).key("signer", signer_id)
    if service is None:
        return fail("warden signer attest", f"no pinned service key for signer {signer_id!r}", 2)
    nonce = args.nonce or os.urandom(32)
    binding = report_data_binding(signer_id, bytes.fromhex(announced.public_key[2:]), bytes.fromhex(service[2:]),
                                  nonce)
    found = evidence.obtain(binding)
    doc = {"signer_id": signer_id, "tee": found.tee, "sealing_key_id": announced.key_id,
           "announced_tee": announced.tee, "service_key": service, "nonce": nonce.hex(),
           "report_data": binding.hex(), "source": found.source,
           "report": None if found.report is None else found.report.hex(),
           "verified": False}
    if found.report is not None and args.vcek:
        result = verify_report(found.report, Path(args.vcek).read_bytes(),
                               Expectations(product=args.product, report_data=binding))
        doc["verified"] = result.ok
        doc["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks]
    if args.json:
        print_json(doc)
    elif found.report is None:
        print(f"signer {signer_id}: tee=none. {found.source}. Its sealing key {announced.key_id} and service key "
              "are bound to no attestation report: clients accept it only with WARDEN_ALLOW_UNATTESTED_SIGNER=1")
    else:
        print(f"signer {signer_id}: SEV-SNP report obtained via {found.source}; report_data {binding.hex()[:32]}…")
        for check in doc.get("checks", ()):
            print(f"{'ok  ' if check['ok'] else 'FAIL'} {check['name']:12} {check['detail']}")
        if not args.vcek:
            print("pass --vcek (the chip's VCEK from AMD's KDS) to verify it here")
    return 0 if doc["verified"] else 1


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    if command == "signer":
        sub = p.add_subparsers(dest="action", required=True)
        a = sub.add_parser("attest", help="this signer's attestation evidence and its verification")
        add_json_flag(a)
        a.add_argument("--nonce", type=bytes.fromhex, help="the verifier's nonce, hex (default: 32 random bytes)")
        a.add_argument("--vcek", help="the chip's VCEK (DER), to verify the report here")
        a.add_argument("--product", choices=PRODUCTS, default="milan")
        a.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the signer's announcement")
        a.set_defaults(handler=cmd_signer_attest)
        return
    sub = p.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify", help="verify a report with its VCEK against AMD's chain")
    add_json_flag(v)
    v.add_argument("--report", required=True, help="the 1184-byte attestation report (binary)")
    v.add_argument("--vcek", required=True, help="the VCEK certificate (DER), from AMD's KDS")
    v.add_argument("--product", choices=PRODUCTS, default="milan", help="the processor generation (default milan)")
    v.add_argument("--expect-measurement", type=_hex(48), action="append",
                   help="an allowed launch measurement (48 bytes hex); repeat for several")
    v.add_argument("--expect-report-data", type=_hex(64), help="the 64 bytes report_data must hold")
    v.add_argument("--minimum-tcb", type=_tcb, default=Tcb(0, 0, 0, 0), help="BOOTLOADER,TEE,SNP,MICROCODE")
    v.add_argument("--allow-debug", action="store_true", help="accept a guest launched with debug allowed")
    v.add_argument("--refuse-smt", action="store_true", help="refuse a guest that allows SMT")
    v.add_argument("--allow-migration-agent", action="store_true", help="accept a guest with a migration agent")
    v.set_defaults(handler=cmd_verify)
