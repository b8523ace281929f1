// Infra: what the services and the infra-up command share above the protocol clients.
//
//   Settings/   the TOML 1.0 parser, the .env reader and the Dynaconf-compatible settings loader
//
// The connection pool, migration runner, NATS topology, provisioner and health checks arrive with
// their issues.
