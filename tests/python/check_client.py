"""The Python package (clients/python) against a real custodyd, as
tests/tests/python.rs runs it, with a registered party, its key file, the
log's verifier key and a reporter token in CUSTODY_TOKEN:

1. spool-less: a CAPTURE and a COPY appended (the COPY waiting for a
   checkpoint); the COPY sent again is answered as a duplicate with its
   index; an event with a flipped signature byte is refused;
2. spooled: events pushed and drained; then a child process pushes three
   more, sends two of them itself and dies before recording any answer
   (os._exit); the spool reopened holds all three, byte for byte, drains
   them (two duplicates with the child's indexes, one appended), and
   numbers go on without a gap;
3. the example examples/report_copy.py reports a COPY through the same
   spool;
4. every event written is proven: fetched with its inclusion proof,
   checked against a checkpoint whose signature is checked with log.vkey,
   and compared byte for byte with what was sent; a tampered leaf and a
   wrong key must fail.

It writes what it logged (sequence number, index, event id, action) as
JSON to --out, for the Rust side to check against the log. Any mismatch
exits non-zero with a message."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List, NoReturn, Tuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody_ledger import (
    Client,
    LogVerifier,
    Modality,
    Purpose,
    RefusedError,
    Reporter,
    Spool,
    SubjectClass,
    VerificationError,
    capture,
    copy,
    event_of,
    leaf_hash,
    verify_inclusion,
)
from custody_ledger.keys import public_key_bytes
from custody_ledger.v1 import log_pb2 as pb

CRASH_CODE = 137


def fail(message: str) -> NoReturn:
    print(f"check_client: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(ok: bool, message: str) -> None:
    if not ok:
        fail(message)


def fresh_digest(label: str) -> bytes:
    return hashlib.sha256(f"python e2e {label} {uuid.uuid4()}".encode()).digest()


def args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server", required=True, help="host:port of custodyd's gRPC listener")
    p.add_argument("--party", required=True)
    p.add_argument("--key", required=True, help="the party's secret key file")
    p.add_argument("--vkey", required=True, help="the log's log.vkey")
    p.add_argument("--from-system", required=True)
    p.add_argument("--to-system", required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--example", required=True, help="clients/python/examples/report_copy.py")
    p.add_argument("--workdir", required=True)
    p.add_argument("--out", help="where to write what was logged, as JSON")
    p.add_argument("--crash-child", action="store_true", help=argparse.SUPPRESS)
    return p


def crash_child(args: argparse.Namespace, client: Client) -> NoReturn:
    """Pushes three events, sends the first two without recording their
    answers, and dies as a killed process would."""
    reporter = Reporter.from_key_file(args.party, args.key, client.log_origin())
    spool = Spool(args.spool, reporter)
    d4, d5 = fresh_digest("crash-4"), fresh_digest("crash-5")
    seqs = spool.push_many(
        [
            capture(
                d4,
                to_system=args.from_system,
                actor=args.party,
                modality=Modality.PLATE_IMAGE,
                subject_class=SubjectClass.UNKNOWN,
            ),
            copy(d4, from_system=args.from_system, to_system=args.to_system, actor=args.party),
            capture(
                d5,
                to_system=args.from_system,
                actor=args.party,
                modality=Modality.SCENE_IMAGE,
                subject_class=SubjectClass.UNKNOWN,
            ),
        ]
    )
    pending = spool.pending()
    sent = {str(s.seq): client.append(s.event) for s in pending[:2]}
    digests = {str(s.seq): hashlib.sha256(s.event.SerializeToString()).hexdigest() for s in pending}
    print(json.dumps({"seqs": seqs, "sent": sent, "digests": digests}), flush=True)
    os._exit(CRASH_CODE)  # no answer recorded, no close: a crash


def main() -> None:
    args = args_parser().parse_args()
    token = os.environ.get("CUSTODY_TOKEN")
    client = Client(args.server, token=token)
    if args.crash_child:
        crash_child(args, client)

    verifier = LogVerifier.from_file(args.vkey)
    origin = client.log_origin()
    check(
        origin == verifier.origin, f"the genesis entry names the origin {origin!r}; log.vkey names {verifier.origin!r}"
    )
    # The origin proven: entry 0 in a checkpoint the pinned key signed.
    check(client.log_origin(verifier) == origin, "the proven genesis entry names the pinned origin")
    reporter = Reporter.from_key_file(args.party, args.key, origin)
    # Everything logged: seq -> (index, signed event).
    logged: Dict[int, Tuple[int, pb.SignedEvent]] = {}

    # 1. Spool-less.
    asset = fresh_digest("spool-less")
    cap = reporter.sign(
        capture(
            asset,
            to_system=args.from_system,
            actor=args.party,
            modality=Modality.FACE_IMAGE,
            subject_class=SubjectClass.CITIZEN,
            port="port-7",
            lane="lane-3",
        )
    )
    logged[1] = (client.append(cap), cap)
    cp = reporter.sign(
        copy(asset, from_system=args.from_system, to_system=args.to_system, actor=args.party, purpose=Purpose.BACKUP)
    )
    copied = client.submit(cp, wait_for_checkpoint=True)
    check(not copied.duplicate, "a new COPY was answered as a duplicate")
    check(bool(copied.checkpoint), "Append with wait_for_checkpoint returned no checkpoint")
    logged[2] = (copied.index, cp)
    check(event_of(cp).reporter_seq == 2 and reporter.next_seq == 3, f"sequence numbers: {reporter!r}")
    again = client.submit(cp)
    check(
        again.duplicate and again.index == copied.index, f"the COPY sent again: {again}, first logged at {copied.index}"
    )

    tampered = pb.SignedEvent()
    tampered.CopyFrom(
        reporter.sign(
            copy(fresh_digest("tampered"), from_system=args.from_system, to_system=args.to_system, actor=args.party),
            seq=2,
        )
    )
    sig = bytearray(tampered.signatures[0].sig)
    sig[0] ^= 0x01
    tampered.signatures[0].sig = bytes(sig)
    try:
        i = client.append(tampered)
        fail(f"an event with a flipped signature byte was logged at {i}")
    except RefusedError as e:
        print(f"check_client: a tampered signature is refused: {e}")
    check(reporter.next_seq == 3, "an explicit sequence number moved the reporter's next one back or on")

    # 2. Spooled.
    spool_path = Path(args.spool)
    with Spool(spool_path, reporter) as spool:
        check(spool.next_seq() == 3, f"the spool continues after the reporter's numbers: next is {spool.next_seq()}")
        d2, d3 = fresh_digest("spooled-2"), fresh_digest("spooled-3")
        seqs = spool.push_many(
            [
                capture(
                    d2,
                    to_system=args.from_system,
                    actor=args.party,
                    modality=Modality.FACE_IMAGE,
                    subject_class=SubjectClass.NON_CITIZEN,
                ),
                copy(d2, from_system=args.from_system, to_system=args.to_system, actor=args.party),
                capture(
                    d3,
                    to_system=args.from_system,
                    actor=args.party,
                    modality=Modality.FACE_IMAGE,
                    subject_class=SubjectClass.CITIZEN,
                ),
            ]
        )
        seqs.append(spool.push(copy(d3, from_system=args.from_system, to_system=args.to_system, actor=args.party)))
        check(seqs == [3, 4, 5, 6], f"spooled as {seqs}")
        st = spool.status()
        check(st.depth == 4 and st.oldest_pending is not None and st.oldest_pending[0] == 3, f"before drain: {st}")
        report = spool.drain(client)
        check(report.appended == 4 and report.duplicate == 0 and not report.refused, f"drain: {report}")
        st = spool.status()
        check(
            st.depth == 0
            and st.last_ack is not None
            and st.last_ack.seq == 6
            and st.last_acked_index == spool.index_of(6),
            f"after drain: {st}",
        )
        for seq in seqs:
            s = spool.event(seq)
            index = spool.index_of(seq)
            check(s is not None and index is not None, f"event {seq} lost from the spool")
            assert s is not None and index is not None
            logged[seq] = (index, s.event)

    # The crash: a child pushes 7..9, sends 7 and 8, and dies.
    child = subprocess.run(
        [sys.executable, __file__, "--crash-child", *sys.argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    check(child.returncode == CRASH_CODE, f"the crash child exited {child.returncode}: {child.stderr}")
    crashed = json.loads(child.stdout)
    check(crashed["seqs"] == [7, 8, 9], f"the child spooled {crashed['seqs']}")
    with Spool(spool_path, Reporter.from_key_file(args.party, args.key, origin)) as spool:
        st = spool.status()
        check(
            st.depth == 3 and st.oldest_pending is not None and st.oldest_pending[0] == 7 and st.next_seq == 10,
            f"the spool reopened after the crash: {st}",
        )
        check(st.last_ack is not None and st.last_ack.seq == 6, f"the last answer before the crash: {st.last_ack}")
        for s in spool.pending():
            digest = hashlib.sha256(s.event.SerializeToString()).hexdigest()
            check(
                digest == crashed["digests"][str(s.seq)], f"event {s.seq} is not byte for byte what the child spooled"
            )
        report = spool.drain(client)
        check(
            report.duplicate == 2 and report.appended == 1 and not report.refused,
            f"the drain after the crash: {report}",
        )
        for seq_text, index in crashed["sent"].items():
            a = spool.ack(int(seq_text))
            check(
                a is not None and a.outcome == "duplicate" and a.index == index,
                f"event {seq_text}, logged at {index} by the child, was recorded as {a}",
            )
        nxt = spool.push(
            copy(fresh_digest("after-crash"), from_system=args.from_system, to_system=args.to_system, actor=args.party)
        )
        check(nxt == 10, f"after the crash, the next event got {nxt}; want 10")
        check(spool.drain(client).appended == 1, "the event after the crash was not appended")
        for seq in range(7, 11):
            s = spool.event(seq)
            index = spool.index_of(seq)
            check(s is not None and index is not None, f"event {seq} not answered")
            assert s is not None and index is not None
            logged[seq] = (index, s.event)

    # 3. The example, through the same spool.
    image = Path(args.workdir) / "lane3-0001.jpg"
    image.write_bytes(os.urandom(4096))
    env = dict(
        os.environ,
        CUSTODY_SERVER=args.server,
        CUSTODY_PARTY=args.party,
        CUSTODY_KEY=args.key,
        CUSTODY_LOG_KEY=args.vkey,
        CUSTODY_SPOOL=str(spool_path),
    )
    ex = subprocess.run(
        [sys.executable, args.example, str(image), args.from_system, args.to_system],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    check(ex.returncode == 0, f"the example failed ({ex.returncode}): {ex.stderr}")
    print(f"check_client: the example printed: {ex.stdout.strip()}")
    with Spool(spool_path, Reporter.from_key_file(args.party, args.key, origin)) as spool:
        index = spool.index_of(11)
        s = spool.event(11)
        check(index is not None and s is not None, "the example's event is not answered in the spool")
        assert index is not None and s is not None
        check(ex.stdout.strip() == f"COPY 11 logged at index {index}", f"the example printed {ex.stdout!r}")
        action = event_of(s.event).custody
        check(
            action.action == pb.CUSTODY_ACTION_KIND_COPY
            and action.asset_digest == hashlib.sha256(image.read_bytes()).digest(),
            "the example's event is not a COPY of the file",
        )
        logged[11] = (index, s.event)

    # 4. Proofs of everything written.
    check(sorted(logged) == list(range(1, 12)), f"sequence numbers logged: {sorted(logged)}")
    for seq, (index, signed) in sorted(logged.items()):
        proven = client.prove(index, verifier, expect=signed)
        check(proven.entry.event.body == signed.body, f"entry {index} holds another event")
        print(f"check_client: event {seq} proven at index {index} in the checkpoint of size {proven.checkpoint.size}")
    # The proof Append returned with the COPY, against its own checkpoint.
    at_append = verifier.verify(copied.checkpoint)
    leaf = client.prove(copied.index, verifier).leaf
    verify_inclusion(copied.index, at_append.size, leaf_hash(leaf), copied.inclusion_proof, at_append.root)
    # Checks that can fail do: a changed leaf, and another key of the
    # same name.
    proven = client.prove(copied.index, verifier)
    try:
        verify_inclusion(
            copied.index, proven.checkpoint.size, leaf_hash(proven.leaf + b"\x00"), proven.proof, proven.checkpoint.root
        )
        fail("a changed leaf verified")
    except VerificationError:
        pass
    other = LogVerifier(_vkey(verifier.origin, public_key_bytes(Ed25519PrivateKey.generate())))
    # A key whose base64 holds '+' (the separator of the key string's
    # fields) parses too.
    while "+" not in other.vkey.split("+", 2)[2]:
        other = LogVerifier(_vkey(verifier.origin, public_key_bytes(Ed25519PrivateKey.generate())))
    try:
        other.verify(proven.checkpoint.note)
        fail("a checkpoint verified under another key")
    except VerificationError:
        pass
    latest = client.checkpoint(verifier)
    check(latest.size > max(i for i, _ in logged.values()), f"the latest checkpoint ({latest.size}) lacks the events")

    out: List[Dict[str, object]] = []
    for seq, (index, signed) in sorted(logged.items()):
        ev = event_of(signed)
        out.append(
            {
                "seq": seq,
                "index": index,
                "event_id": ev.event_id,
                "action": pb.CustodyActionKind.Name(ev.custody.action),
            }
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"party": args.party, "copy_index": copied.index, "events": out}))
    print(f"check_client: OK: {len(out)} events reported and proven")


def _vkey(name: str, public_key: bytes) -> str:
    import base64

    key = b"\x01" + public_key
    key_hash = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    return f"{name}+{key_hash.hex()}+{base64.b64encode(key).decode()}"


if __name__ == "__main__":
    main()
