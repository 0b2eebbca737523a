"""``warden attest verify``: check an SEV-SNP attestation report against AMD's certificate chain;
``warden attest measure``: the launch measurement of a guest image (``runtime.attestation.measure``);
``warden signer attest``: this signer's evidence (a report binding its keys, or ``tee=none`` and why).

Prints each check (parse, the chain VCEK → ASK → ARK against the root shipped for the processor
generation, the report's signature, guest policy, TCB, launch measurement, report_data) and exits
1 if any failed, so a customer can check a signer's report without trusting the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from infra.cli.output import add_json_flag, fail, note, print_json
from runtime.attestation import evidence
from runtime.attestation.measure import VCPU_TYPES, VMM_TYPES, LaunchInputs, MeasureError, launch_measurement
from runtime.attestation.policy import AttestationPolicy
from runtime.attestation.verify import (
    PRODUCTS,
    Check,
    Expectations,
    Tcb,
    amd_chain,
    parse_report,
    report_data_binding,
    verify_report,
)
from runtime.clock import utcnow
from runtime.config import load


def _tcb(text: str) -> Tcb:
    try:
        bootloader, tee, snp, microcode = (int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("the minimum TCB is BOOTLOADER,TEE,SNP,MICROCODE, e.g. 3,0,8,115") from None
    return Tcb(bootloader, tee, snp, microcode)


def _hex(size: int) -> Callable[[str], bytes]:
    def parse(text: str) -> bytes:
        try:
            value = bytes.fromhex(text.removeprefix("0x"))
        except ValueError:
            value = b""
        if len(value) != size:
            raise argparse.ArgumentTypeError(f"must be {size} bytes of hex ({2 * size} digits)")
        return value

    return parse


def _guest_features(text: str) -> int:
    try:
        return int(text, 16)
    except ValueError:
        raise argparse.ArgumentTypeError("SEV_FEATURES in hex, e.g. 0x1 (SNP active)") from None


def _vcpu_sig(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError("a CPUID signature, e.g. 0xa00f11 (EPYC-Milan)") from None


def _chain(args: argparse.Namespace) -> tuple[tuple[x509.Certificate, x509.Certificate] | None, Check | None]:
    """The --chain file's (ASK, ARK), and the check that its ARK is AMD's shipped one."""
    if not args.chain:
        return None, None
    try:
        certificates = x509.load_pem_x509_certificates(Path(args.chain).read_bytes())
    except ValueError:
        raise ValueError(
            f"--chain {args.chain}: not PEM certificates; expected the ASK then the ARK, as AMD's KDS serves cert_chain"
        ) from None
    if len(certificates) != 2:
        raise ValueError(
            f"--chain {args.chain}: expected the ASK then the ARK (2 PEM certificates), found {len(certificates)}"
        )
    ask, ark = certificates
    shipped = amd_chain(args.product)[1]
    if ark.public_bytes(Encoding.DER) == shipped.public_bytes(Encoding.DER):
        return (ask, ark), Check("chain.root", True, f"the --chain ARK is AMD's shipped {args.product} ARK")
    return (ask, ark), Check(
        "chain.root",
        args.trust_chain,
        f"the --chain ARK is NOT AMD's shipped {args.product} ARK"
        + (
            " (trusted anyway: --trust-chain)"
            if args.trust_chain
            else "; pass --trust-chain only for a chain you made yourself"
        ),
    )


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        raw, vcek = Path(args.report).read_bytes(), Path(args.vcek).read_bytes()
        chain, root_check = _chain(args)
    except (OSError, ValueError) as exc:
        return fail("warden attest verify", exc, 2)
    expect = Expectations(
        product=args.product,
        measurements=tuple(args.expect_measurement or ()),
        minimum_tcb=args.minimum_tcb,
        allow_debug=args.allow_debug,
        allow_smt=not args.refuse_smt,
        allow_migration_agent=args.allow_migration_agent,
        report_data=args.expect_report_data,
    )
    if root_check is not None:
        # On stderr in both modes: a chain from the command line is a root of trust the operator chose.
        note(
            f"WARNING: --chain {args.chain} REPLACES the AMD roots shipped with Warden for {args.product}; the "
            "report is checked against this file's ASK and ARK (see check chain.root)"
        )
    result = verify_report(raw, vcek, expect, chain=chain)
    if root_check is not None:
        result.checks.insert(1, root_check)
    if args.json:
        report = result.report
        print_json(
            {
                "ok": result.ok,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks],
                "report": None
                if report is None
                else {
                    "version": report.version,
                    "vmpl": report.vmpl,
                    "policy": hex(report.policy),
                    "measurement": report.measurement.hex(),
                    "report_data": report.report_data.hex(),
                    "reported_tcb": str(Tcb.decode(report.reported_tcb, args.product)),
                    "chip_id": report.chip_id.hex(),
                    "signing_key": report.signing_key,
                },
            }
        )
    else:
        for check in result.checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:12} {check.detail}")
        print(
            "the report verifies"
            if result.ok
            else f"the report does not verify: {len(result.failures)} check(s) failed"
        )
    return 0 if result.ok else 1


def cmd_measure(args: argparse.Namespace) -> int:
    inputs = LaunchInputs(
        ovmf=Path(args.ovmf),
        vcpus=args.vcpus,
        vcpu_type=args.vcpu_type,
        vcpu_sig=args.vcpu_sig,
        vmm_type=args.vmm_type,
        kernel=Path(args.kernel) if args.kernel else None,
        initrd=Path(args.initrd) if args.initrd else None,
        append=args.append,
        guest_features=args.guest_features,
    )
    try:
        measurement = launch_measurement(inputs)
    except MeasureError as exc:
        return fail("warden attest measure", exc, 2)
    files = {
        name: path
        for name, path in (("ovmf", inputs.ovmf), ("kernel", inputs.kernel), ("initrd", inputs.initrd))
        if path is not None
    }
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in files.items()}
    vcpu = inputs.vcpu_type or ("-" if inputs.vcpu_sig is None else hex(inputs.vcpu_sig))
    if args.json:
        print_json(
            {
                "measurement": measurement.hex(),
                "vcpus": inputs.vcpus,
                "vcpu_type": inputs.vcpu_type,
                "vcpu_sig": None if inputs.vcpu_sig is None else hex(inputs.vcpu_sig),
                "vmm_type": inputs.vmm_type,
                "append": inputs.append,
                "guest_features": hex(inputs.guest_features),
                "inputs": {name: {"path": str(files[name]), "sha256": digest} for name, digest in digests.items()},
            }
        )
    else:
        # The measurement alone on stdout, so `$(warden attest measure ...)` is the allowlist entry.
        print(measurement.hex())
        for name, digest in digests.items():
            note(f"  {name:7} sha256 {digest}  {files[name]}")
        note(
            f"  {inputs.vcpus} x vCPU {vcpu}, VMM {inputs.vmm_type}, guest features {hex(inputs.guest_features)}"
            + (f", command line {inputs.append!r}" if inputs.append is not None else "")
        )
    return 0


def cmd_signer_attest(args: argparse.Namespace) -> int:
    """The running signer's keys (its announced sealing key, its pinned service key) bound with a
    nonce into report_data, and the evidence this machine gives for them."""
    # Kafka, the SDK and the admins' pins: only `signer attest` reads them, not `attest verify|measure`
    from runtime.trust import PinnedServiceKeys
    from sdk.client import sealing_keys

    settings = load()
    signer_id = settings.signer_id
    announced = {k.signer_id: k for k in asyncio.run(sealing_keys(settings, timeout_s=args.wait))}.get(signer_id)
    if announced is None:
        return fail(
            "warden signer attest",
            f"signer {signer_id!r} has announced no sealing key on warden.signer.sealing; is it running (`warden up`)?",
            2,
        )
    service = PinnedServiceKeys(settings).key("signer", signer_id)
    if service is None:
        return fail("warden signer attest", f"no pinned service key for signer {signer_id!r}", 2)
    nonce = args.nonce or os.urandom(32)
    binding = report_data_binding(signer_id, bytes.fromhex(announced.public_key[2:]), bytes.fromhex(service[2:]), nonce)
    found = evidence.obtain(binding)
    doc: dict[str, Any] = {
        "signer_id": signer_id,
        "tee": found.tee,
        "sealing_key_id": announced.key_id,
        "announced_tee": announced.tee,
        "service_key": service,
        "nonce": nonce.hex(),
        "report_data": binding.hex(),
        "source": found.source,
        "report": None if found.report is None else found.report.hex(),
        "verified": False,
    }
    vcek = Path(args.vcek).read_bytes() if args.vcek else evidence.vcek_of(found, settings.attestation.vcek_file)
    if found.report is not None:
        doc["vcek_url"] = evidence.vcek_url(parse_report(found.report), args.product or settings.attestation.product)
    if found.report is not None and vcek is not None:
        # The same policy clients and the key release apply (WARDEN_ATTESTATION_*), with this nonce.
        policy = AttestationPolicy.from_settings(settings.attestation)
        if args.product:
            policy = dataclasses.replace(policy, product=args.product)
        now = utcnow()
        result = policy.verify(found.report, vcek, binding, now, now)
        doc["verified"] = result.ok
        doc["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in result.checks]
    if args.json:
        print_json(doc)
    elif found.report is None:
        print(
            f"signer {signer_id}: tee=none. {found.source}. Its sealing key {announced.key_id} and service key "
            "are bound to no attestation report: clients accept it only with WARDEN_ALLOW_UNATTESTED_SIGNER=1"
        )
    else:
        print(f"signer {signer_id}: SEV-SNP report obtained via {found.source}; report_data {binding.hex()[:32]}…")
        for check in doc.get("checks", ()):
            print(f"{'ok  ' if check['ok'] else 'FAIL'} {check['name']:12} {check['detail']}")
        if "checks" not in doc:
            print(f"no VCEK from the host: fetch it from {doc['vcek_url']} and pass --vcek to verify it here")
    return 0 if doc["verified"] else 1


def add_arguments(command: str, p: argparse.ArgumentParser) -> None:
    if command == "signer":
        sub = p.add_subparsers(dest="action", required=True)
        a = sub.add_parser("attest", help="this signer's attestation evidence and its verification")
        add_json_flag(a)
        a.add_argument("--nonce", type=bytes.fromhex, help="the verifier's nonce, hex (default: 32 random bytes)")
        a.add_argument("--vcek", help="the chip's VCEK (DER), to verify the report here")
        a.add_argument("--product", choices=PRODUCTS, help="default: WARDEN_ATTESTATION_PRODUCT")
        a.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the signer's announcement")
        a.set_defaults(handler=cmd_signer_attest)
        return
    sub = p.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify", help="verify a report with its VCEK against AMD's chain")
    add_json_flag(v)
    v.add_argument("--report", required=True, help="the 1184-byte attestation report (binary)")
    v.add_argument("--vcek", required=True, help="the VCEK certificate (DER), from AMD's KDS")
    v.add_argument("--product", choices=PRODUCTS, default="milan", help="the processor generation (default milan)")
    v.add_argument(
        "--expect-measurement",
        type=_hex(48),
        action="append",
        help="an allowed launch measurement (48 bytes hex); repeat for several",
    )
    v.add_argument("--expect-report-data", type=_hex(64), help="the 64 bytes report_data must hold")
    v.add_argument("--minimum-tcb", type=_tcb, default=Tcb(0, 0, 0, 0), help="BOOTLOADER,TEE,SNP,MICROCODE")
    v.add_argument("--allow-debug", action="store_true", help="accept a guest launched with debug allowed")
    v.add_argument("--refuse-smt", action="store_true", help="refuse a guest that allows SMT")
    v.add_argument("--allow-migration-agent", action="store_true", help="accept a guest with a migration agent")
    v.add_argument(
        "--chain",
        help="a PEM file with the ASK then the ARK (as AMD's KDS serves cert_chain), used "
        "instead of the roots shipped for --product; its ARK must be AMD's",
    )
    v.add_argument("--trust-chain", action="store_true", help="accept a --chain whose ARK is not AMD's (a test chain)")
    v.set_defaults(handler=cmd_verify)
    m = sub.add_parser(
        "measure",
        help="the launch measurement of a guest image, to compare with a report or to "
        "list in WARDEN_ATTESTATION_MEASUREMENTS",
    )
    add_json_flag(m)
    m.add_argument("--ovmf", required=True, help="the OVMF firmware image the guest boots (with SEV metadata)")
    m.add_argument("--vcpus", type=int, required=True, help="number of vCPUs (each has its own measured VMSA)")
    cpu = m.add_mutually_exclusive_group()
    cpu.add_argument(
        "--vcpu-type", help="the vCPU model QEMU presents (-cpu), e.g. EPYC-Milan; one of " + ", ".join(VCPU_TYPES)
    )
    cpu.add_argument("--vcpu-sig", type=_vcpu_sig, help="or its CPUID signature, e.g. 0xa00f11")
    m.add_argument(
        "--vmm-type",
        default="QEMU",
        choices=tuple(VMM_TYPES),
        help="the VMM that launched the guest (default QEMU; ec2 and gce fix the vCPU signature)",
    )
    m.add_argument("--kernel", help="a kernel booted directly (needs an OVMF with an SNP_KERNEL_HASHES page)")
    m.add_argument("--initrd", help="its initrd")
    m.add_argument("--append", help="its command line")
    m.add_argument(
        "--guest-features",
        type=_guest_features,
        default=0x1,
        help="SEV_FEATURES of the guest, hex (default 0x1, SNP active)",
    )
    m.set_defaults(handler=cmd_measure)
