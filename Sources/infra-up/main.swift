// infra-up: brings up the local stack (PostgreSQL, Redis, NATS with JetStream, Prometheus, Grafana).
//
// Bringing up the stack is not implemented yet: without a verb the command says so and exits with
// a failure status, so that no script mistakes it for a stack that came up. `infra-up migrate …`
// runs the migration runner's verbs against the database the settings name.

import Foundation
import Infra
import Logging
import Settings

#if canImport(Glibc)
import Glibc
#endif

func standardError(_ text: String) {
    let line = text.hasSuffix("\n") ? text : text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "migrate" {
    LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    var logger = Logger(label: "infra-up")
    logger.logLevel = ProcessInfo.processInfo.environment["INFRA_UP_DEBUG"] == nil ? .warning : .debug
    let status = await Task.detached {
        await MigrateCommand.run(
            Array(arguments.dropFirst()),
            settings: { try Settings.load(environment: ProcessInfo.processInfo.environment) }, logger: logger,
            print: { Swift.print($0) }, report: standardError)
    }.value
    exit(status)
}

standardError("""
    infra-up does not bring up the stack yet: it starts no servers and creates no NATS streams.
    What exists today: `infra-up migrate …` (the migration runner: see `infra-up migrate --help`),
    and the library (the PostgreSQL, Redis and NATS clients, the pool, the settings loader).

    """)
exit(2)
