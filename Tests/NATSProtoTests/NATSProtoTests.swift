// Tests for NATSProto arrive with the module's implementation.
