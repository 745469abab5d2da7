"""Report that FILE was copied from one system to another:

    CUSTODY_SERVER=localhost:7100 CUSTODY_TOKEN=clt_... CUSTODY_PARTY=vendor-dc \
    CUSTODY_KEY=vendor-dc.key CUSTODY_LOG_KEY=log.vkey python report_copy.py FILE FROM_SYSTEM TO_SYSTEM

The event is committed to the spool (CUSTODY_SPOOL, default custody.spool)
before it is sent, so a crash loses nothing and numbers have no gaps."""

import hashlib, os, sys
from custody_ledger import Client, LogVerifier, Reporter, Spool, copy

file, from_system, to_system = sys.argv[1:4]
client = Client(os.environ["CUSTODY_SERVER"], token=os.environ.get("CUSTODY_TOKEN"))
origin = client.log_origin(LogVerifier.from_file(os.environ["CUSTODY_LOG_KEY"]))  # proven, pinned
reporter = Reporter.from_key_file(os.environ["CUSTODY_PARTY"], os.environ["CUSTODY_KEY"], origin)
with open(file, "rb") as f:
    digest = hashlib.sha256(f.read()).digest()
with Spool(os.environ.get("CUSTODY_SPOOL", "custody.spool"), reporter) as spool:
    seq = spool.push(copy(digest, from_system=from_system, to_system=to_system, actor=reporter.party))
    spool.drain(client)
    print(f"COPY {seq} logged at index {spool.index_of(seq)}")
