// Infra: the connection pool, settings loader, migration runner, NATS topology, provisioner and
// health checks that the services and the infra-up command share.
//
// This module is laid out but not yet implemented; it exports no declarations until its issues land.
