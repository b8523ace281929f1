// NATSProto: the NATS client protocol, JetStream, KV and Object Store.
//
// This module is laid out but not yet implemented. Its layout, per DESIGN.md:
//   Messages/      the resumable parser (INFO, MSG, HMSG, PING, PONG, +OK, -ERR) and the encoders
//   a connection state machine (no I/O, no clock) with subscriptions, request muxing and reconnect
//   a driver that owns a Transport.Connection, and the public client API
// Nothing here pretends to work: the module exports no declarations until the protocol lands.
