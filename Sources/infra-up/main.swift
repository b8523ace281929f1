// infra-up: brings up the local stack (PostgreSQL, Redis, NATS with JetStream, Prometheus, Grafana).
//
// Not implemented yet. Until it is, the command says so and exits with a failure status, so that no
// script mistakes it for a stack that came up.

#if canImport(Glibc)
import Glibc
#endif

let message = """
    infra-up is not implemented yet: it starts no servers, applies no migrations and creates no
    NATS streams. What exists today is the library: the PostgreSQL, Redis and NATS clients, the
    settings loader (Settings), and their tests (make test). Start the servers yourself until
    infra-up can.

    """
_ = message.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
exit(2)
