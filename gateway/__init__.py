"""The SEQR merchant interface emulator: SOAP gateway, domain rules and report worker."""
