// The soak: mixed load on all three clients at a fixed rate for a given time, with this process's
// resident memory, open descriptors and threads sampled every 10 s. After a warm-up (a tenth of
// the run, at least a minute), memory must stay within 10% of its level at the end of the warm-up
// and descriptors and threads must not grow; the exit status says whether they did.
//
//   soak MINUTES [WORKLOADS]   (servers from the INFRA_TEST_* variables of scripts/test-servers.sh;
//                              WORKLOADS: a comma-separated subset of postgres,redis,nats,jetstream,kv)
//
// Each second: 1,000 PostgreSQL queries through the pool (a third of them in transactions that
// insert and delete), 2,000 Redis commands (SET with a TTL, GET, a 20-command pipeline), 2,000
// NATS messages published and received on a subscription, 200 JetStream publishes with acks and
// 100 key-value puts and gets.

import Foundation
import Infra
import JetStream
import Logging
import NATSProto
import PGWire
import RESP
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

func environment(_ name: String) -> String {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
        FileHandle.standardError.write(Data("soak: \(name) is not set; run it under scripts/test-servers.sh run\n".utf8))
        exit(2)
    }
    return value
}

struct Sample {
    var minute: Double
    var residentMB: Double
    var descriptors: Int
    var threads: Int
}

func sample(_ start: ContinuousClock.Instant) -> Sample {
    let pages = (try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8))?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let threads = status.split(separator: "\n").first { $0.hasPrefix("Threads:") }.flatMap { Int($0.split(separator: "\t").last ?? "") } ?? 0
    let elapsed = ContinuousClock.now - start
    return Sample(
        minute: Double(elapsed.components.seconds) / 60, residentMB: Double(pages * Int(sysconf(Int32(_SC_PAGESIZE)))) / 1_048_576,
        descriptors: descriptors, threads: threads)
}

final class Counters: Sendable {
    let next = Atomic<Int64>(0)
    let received = Atomic<Int>(0)
}

final class Tally: Sendable {
    let counts = Mutex<[String: Int]>([:])
    func add(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }
}

/// Runs `work` `perSecond` times a second (in ticks of 10 ms) until `end`.
func atRate(_ perSecond: Int, until end: ContinuousClock.Instant, _ name: String, _ tally: Tally, _ work: @escaping @Sendable () async throws -> Void) async {
    let perTick = max(1, perSecond / 100)
    var next = ContinuousClock.now
    while ContinuousClock.now < end {
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<perTick {
                group.addTask {
                    do { try await work() } catch { tally.add("\(name) error: \(type(of: error))") }
                }
            }
        }
        tally.add(name)
        next += .milliseconds(10)
        if next > .now { try? await Task.sleep(until: next) } else { next = .now }
    }
}

let minutes = Double(CommandLine.arguments.dropFirst().first ?? "30") ?? 30
let workloads = Set((CommandLine.arguments.dropFirst(2).first ?? "postgres,redis,nats,jetstream,kv").split(separator: ",").map(String.init))
let status = await Task.detached { () -> Int32 in
    do {
        var postgres = PostgresConfiguration(
            hosts: [.init(environment("INFRA_TEST_POSTGRES_HOST"), port: Int(environment("INFRA_TEST_POSTGRES_PORT")) ?? 5432)],
            user: environment("INFRA_TEST_POSTGRES_USER"), password: environment("INFRA_TEST_POSTGRES_PASSWORD"),
            database: environment("INFRA_TEST_POSTGRES_DATABASE"), applicationName: "soak", sslMode: .disable)
        postgres.inlineReadWait = .zero
        let pool = ConnectionPool(
            name: "soak", configuration: PoolConfiguration(minimumConnections: 4, maximumConnections: 16), logger: Logger(label: "soak")
        ) { [postgres] _ in try await PostgresConnection.connect(postgres) }
        let poolRun = Task { try? await pool.run() }
        let table = "soak_\(getpid())"
        _ = try await pool.withConnection { try await $0.simpleQuery("CREATE TABLE IF NOT EXISTS \(table) (id bigint PRIMARY KEY, body text)") }
        let redis = RedisClient(configuration: try RedisConfiguration(url: environment("INFRA_TEST_REDIS_URL")))
        let nats = try await NATSClient.connect(NATSConfiguration(url: environment("INFRA_TEST_NATS_URL")))
        let js = JetStreamContext(client: nats)
        let stream = "SOAK\(getpid())"
        var streamConfig = StreamConfig(name: stream, subjects: ["soak\(getpid()).>"])
        streamConfig.maxMessages = 100_000
        _ = try await js.createStream(streamConfig)
        let kv = try await js.createKeyValue(KeyValueConfig(bucket: "soak\(getpid())"))
        let subject = "soak\(getpid()).core"
        let subscription = try await nats.subscribe(to: subject)
        let counters = Counters()
        let reader = Task { for try await _ in subscription { counters.received.add(1, ordering: .relaxed) } }

        let start = ContinuousClock.now
        let end = start + .seconds(minutes * 60)
        let tally = Tally()
        let sampler = Task { () -> [Sample] in
            var samples = [sample(start)]
            while ContinuousClock.now < end {
                try? await Task.sleep(for: .seconds(10))
                samples.append(sample(start))
                let last = samples[samples.count - 1]
                print(String(format: "%6.1f min  %7.1f MB resident  %4d descriptors  %3d threads", last.minute, last.residentMB, last.descriptors, last.threads))
            }
            return samples
        }
        await withTaskGroup(of: Void.self) { group in
            if workloads.contains("postgres") { group.addTask {
                await atRate(1000, until: end, "postgres", tally) {
                    let id = counters.next.add(1, ordering: .relaxed).newValue
                    if id % 3 == 0 {
                        _ = try await pool.withConnection {
                            try await $0.simpleQuery("BEGIN; INSERT INTO \(table) VALUES (\(id), repeat('x', 100)); DELETE FROM \(table) WHERE id = \(id); COMMIT")
                        }
                    } else {
                        _ = try await pool.withConnection { try await $0.query("SELECT \(id)::int8, now()").collect() }
                    }
                }
            } }
            if workloads.contains("redis") { group.addTask {
                await atRate(2000, until: end, "redis", tally) {
                    let id = counters.next.add(1, ordering: .relaxed).newValue
                    switch id % 20 {
                    case 0: _ = try await redis.pipeline((0..<20).map { ["SET", .string("soak:\($0)"), .string("\(id)"), "EX", "60"] })
                    case let even where even % 2 == 0: try await redis.send(["SET", .string("soak:\(id % 1000)"), .string(String(repeating: "v", count: 200)), "EX", "60"])
                    default: _ = try await redis.send(["GET", .string("soak:\(id % 1000)")])
                    }
                }
            } }
            if workloads.contains("nats") { group.addTask {
                await atRate(2000, until: end, "nats", tally) { try await nats.publish("message", to: subject) }
            } }
            if workloads.contains("jetstream") { group.addTask {
                await atRate(200, until: end, "jetstream", tally) {
                    _ = try await js.publish("event", to: "soak\(getpid()).events")
                }
            } }
            if workloads.contains("kv") { group.addTask {
                await atRate(100, until: end, "kv", tally) {
                    let id = counters.next.add(1, ordering: .relaxed).newValue
                    _ = try await kv.put("k\(id % 100)", "value \(id)")
                    _ = try await kv.get("k\(id % 100)")
                }
            } }
        }
        let samples = await sampler.value
        reader.cancel()
        _ = try? await js.deleteStream(stream)
        _ = try? await js.deleteKeyValue("soak\(getpid())")
        _ = try? await pool.withConnection { try await $0.simpleQuery("DROP TABLE \(table)") }
        await nats.close()
        redis.close()
        await pool.shutdown()
        poolRun.cancel()

        let errors = tally.counts.withLock { $0.filter { $0.key.contains("error") } }
        let warmUp = max(1.0, minutes / 10)
        let steady = samples.filter { $0.minute >= warmUp }
        guard let base = steady.first else {
            print("soak: too short for a steady state (warm-up \(warmUp) min)")
            return 1
        }
        let peak = steady.map(\.residentMB).max() ?? base.residentMB
        let descriptorGrowth = (steady.map(\.descriptors).max() ?? 0) - base.descriptors
        let threadGrowth = (steady.map(\.threads).max() ?? 0) - base.threads
        print(String(format: "soak: %.0f min; after the %.0f min warm-up resident memory %.1f MB, peak %.1f MB (%+.1f%%); descriptors %+d; threads %+d; NATS messages received %d; errors %@",
                     minutes, warmUp, base.residentMB, peak, (peak / base.residentMB - 1) * 100, descriptorGrowth, threadGrowth,
                     counters.received.load(ordering: .relaxed), errors.isEmpty ? "none" : "\(errors)"))
        let passed = peak <= base.residentMB * 1.10 && descriptorGrowth <= 0 && threadGrowth <= 0 && errors.isEmpty
        print(passed ? "soak: passed" : "soak: FAILED")
        return passed ? 0 : 1
    } catch {
        print("soak: \(error)")
        return 1
    }
}.value
exit(status)
