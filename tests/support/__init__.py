"""What the tests share: servers, envelopes, wire checks, the official contract, traffic,
audits, databases, domain and client helpers. Test modules import only from here."""
