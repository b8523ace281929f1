// JetStream: persistence on NATS, built on NATSProto's public API only — requests, subscriptions
// and publishes of `NATSClient` — the way nats.go's `jetstream` package sits on the core
// connection. The core client knows nothing of JetStream.
//
//   API/           the `$JS.API.` requests (with a domain or API prefix), typed configs and infos,
//                  API errors with code and err_code
//   Publishing/    publish with ack (PubAck), expected-sequence and message-id headers
//   Consumers/     pull consumers (fetch, consume with heartbeats and flow control) and ordered ones
//   KeyValue/      buckets on KV_<bucket> streams, as ADR-8 lays them out
//   ObjectStore/   chunked objects with SHA-256 digests on OBJ_<bucket> streams, as ADR-20 lays them out
