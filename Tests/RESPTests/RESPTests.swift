// Tests for RESP arrive with the module's implementation.
