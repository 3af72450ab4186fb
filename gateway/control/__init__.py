"""The tester's control plane: the request journal, fault rules, fixtures (reset and seed) and
the state summaries behind `/admin/` and the `seqr-gateway` admin commands. State lives in
the database, so every gateway process on it sees the same journal, rules and clock."""
