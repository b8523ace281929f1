// Tests for Infra arrive with the module's implementation.
