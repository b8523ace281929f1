// PGWire: the PostgreSQL frontend/backend protocol v3 client.
//
// This module is laid out but not yet implemented. Its layout, per DESIGN.md:
//   Messages/      one frontend or backend message (or small family) per file, encode and decode side by side
//   a connection state machine (no I/O, no clock) and sub-machines for SCRAM, extended query and COPY
//   a driver that owns a Transport.Connection, and the public client API
// Nothing here pretends to work: the module exports no declarations until the protocol lands.
