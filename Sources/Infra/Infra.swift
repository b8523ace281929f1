// Infra: what the services and the infra-up command share above the protocol clients.
//
//   Clients/       Settings → PostgresConfiguration, RedisConfiguration, NATSConfiguration
//   Sessions/      SessionStore: the bot's and web app's sessions in Redis
//   Pool/          the async connection pool (a pure state machine beside its driver)
//   Migrations/    the Alembic-equivalent runner (a pure migration plan beside its shell)
//   Topology/      the NATS streams and buckets (a pure topology diff beside its shell)
//   Provisioning/  native and Docker Compose stacks (a pure stack plan beside its shell)
//
// A folder without code yet has a README saying what goes there.

/// The version of this package's tools, reported by `infra-up --version` and the NATS exporter.
public enum InfraVersion {
    public static let current = "0.1.0"
}
