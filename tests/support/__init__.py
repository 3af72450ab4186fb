"""What the tests share: servers, envelopes, wire checks, the official contract, traffic,
audits, databases, domain and client helpers. Test modules import only from here."""

from pathlib import Path

#: the repository's root: everything the tests read is under it
REPO = Path(__file__).resolve().parents[2]
