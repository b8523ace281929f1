// RESP: the RESP3 (and RESP2) parser and Redis client.
//
// This module is laid out but not yet implemented. Its layout, per DESIGN.md:
//   Messages/      the resumable reply parser and the command encoder
//   a connection state machine (no I/O, no clock) matching pipelined replies to requests
//   a driver that owns a Transport.Connection, and the public client API
// Nothing here pretends to work: the module exports no declarations until the protocol lands.
