// infra-up: brings up the local stack (PostgreSQL, Redis, NATS with JetStream, Prometheus, Grafana).
//
// Bringing up the stack is not implemented yet: without a verb the command says so and exits with
// a failure status, so that no script mistakes it for a stack that came up. `infra-up migrate …`
// runs the migration runner's verbs against the database the settings name; `nats-topology`
// applies the streams and buckets of the settings; `config [--json]` prints every setting.

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
// Logs go to standard error, warnings and worse unless INFRA_UP_DEBUG is set; output to standard output.
let logLevel: Logger.Level = ProcessInfo.processInfo.environment["INFRA_UP_DEBUG"] == nil ? .warning : .debug
LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = logLevel
    return handler
}
if arguments.first == "migrate" {
    let logger = Logger(label: "infra-up")
    let status = await Task.detached {
        await MigrateCommand.run(
            Array(arguments.dropFirst()),
            settings: { try Settings.load(environment: ProcessInfo.processInfo.environment) }, logger: logger,
            print: { Swift.print($0) }, report: standardError)
    }.value
    exit(status)
}

if arguments.first == "nats-topology" || arguments.first == "config" {
    let environment = ProcessInfo.processInfo.environment
    let status = await Task.detached { () -> Int32 in
        let loaded: SettingsLoader.Result
        let settings: Settings
        do {
            loaded = try SettingsLoader().load(environment: environment)
            settings = try Settings(decoding: loaded)
        } catch {
            standardError("infra-up: the settings cannot be loaded: \(error)")
            return 3
        }
        if arguments.first == "config" {
            for line in ConfigCommand.lines(settings, loaded, json: arguments.contains("--json")) { Swift.print(line) }
            return 0
        }
        return await TopologyCommand.run(
            settings: settings, logger: Logger(label: "infra-up"), print: { Swift.print($0) }, report: standardError)
    }.value
    exit(status)
}

standardError("""
    infra-up does not bring up the stack yet: it starts no servers and creates no NATS streams.
    What exists today: `infra-up migrate …` (the migration runner: see `infra-up migrate --help`),
    `infra-up nats-topology`, `infra-up config [--json]`, and the library (the PostgreSQL, Redis and NATS clients, the pool, the settings loader).

    """)
exit(2)
