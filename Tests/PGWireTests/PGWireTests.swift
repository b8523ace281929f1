// Tests for PGWire arrive with the module's implementation.
