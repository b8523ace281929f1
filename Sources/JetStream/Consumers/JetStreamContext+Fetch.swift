import Foundation
import NATSProto
import Synchronization
import Transport

/// A pull request: `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with the batch's bounds.
struct PullRequest {
    var batch: Int
    var expires: Duration?
    var maxBytes: Int?
    var noWait: Bool
    var heartbeat: Duration?

    /// The request's JSON, written directly (it goes out with every pull: a JSONEncoder costs
    /// more than the rest of the request): only numbers and fixed keys, so nothing needs escaping.
    var json: [UInt8] {
        var text = "{\"batch\":\(batch)"
        if let expires { text += ",\"expires\":\(expires.nanoseconds)" }
        if let maxBytes { text += ",\"max_bytes\":\(maxBytes)" }
        if noWait { text += ",\"no_wait\":true" }
        if let heartbeat { text += ",\"idle_heartbeat\":\(heartbeat.nanoseconds)" }
        text += "}"
        return Array(text.utf8)
    }
}

/// What a status message in a pull's replies means.
enum PullStatus: Equatable {
    /// 100 Idle Heartbeat (or flow control): the request is alive.
    case heartbeat
    /// 404 No Messages, 408 Request Timeout: the request ended; what came is the batch.
    case ended
    /// 409 with a reason the request cannot go on from (Consumer Deleted, Exceeded …).
    case failed(String)

    init?(_ message: NATSMessage) {
        guard let status = message.status, message.payload.readableBytes == 0 || status == 100 else { return nil }
        let description = message.headers?.statusDescription ?? ""
        switch status {
        case 100: self = .heartbeat
        case 404, 408: self = .ended
        case 409:
            // A leadership change or a batch completed by bytes ends the request without fault.
            if description.localizedCaseInsensitiveContains("Leadership Change") || description.localizedCaseInsensitiveContains("Batch Completed") {
                self = .ended
            } else {
                self = .failed("409 \(description)")
            }
        default: self = .failed("\(status) \(description)")
        }
    }
}

/// What the task reading a pull's replies shares with the one watching the clock.
final class PullCollector: Sendable {
    struct State {
        var lastActivity = ContinuousClock.now
        var missedHeartbeats = false
    }

    let state = Mutex(State())
}

extension JetStreamContext {
    /// Fetches up to `batch` messages from a pull consumer: one pull request, answered with
    /// what the consumer has, waiting up to `expires` for more (unless `noWait`), stopping at
    /// `maxBytes` when given. With `heartbeat`, the server sends idle heartbeats and two missed
    /// ones end the fetch with ``JetStreamError/Kind/timedOut``. A 409 (consumer deleted,
    /// request limits exceeded) ends it with an API error when nothing was fetched.
    public func fetch(
        consumer: String, stream: String, batch: Int, expires: Duration = .seconds(5), maxBytes: Int? = nil, noWait: Bool = false,
        heartbeat: Duration? = nil
    ) async throws(JetStreamError) -> [JetStreamMessage] {
        try JetStreamName.validate(stream, as: "stream")
        try JetStreamName.validate(consumer, as: "consumer")
        guard batch > 0 else { throw JetStreamError(.usage, message: "a fetch needs a batch of at least 1, not \(batch)") }
        if let heartbeat, heartbeat * 2 > expires {
            throw JetStreamError(.usage, message: "the idle heartbeat (\(heartbeat)) must be at most half of expires (\(expires))")
        }
        let operation = "CONSUMER.MSG.NEXT.\(stream).\(consumer)"
        let inbox = client.newInbox()
        let subscription: NATSSubscription
        do {
            subscription = try await client.subscribe(to: inbox)
            let body = PullRequest(batch: batch, expires: noWait ? nil : expires, maxBytes: maxBytes, noWait: noWait, heartbeat: heartbeat)
            try await client.publish(body.json, to: apiPrefix + "." + operation, replyTo: inbox)
        } catch {
            throw JetStreamError.from(error, doing: operation)
        }
        let collector = PullCollector()
        // The server ends the request at `expires` with a status; the watchdog covers a request
        // that never ends (a lost connection) and, with `heartbeat`, two missed heartbeats: it
        // ends the subscription, which ends the loop below.
        let deadline = ContinuousClock.now + (noWait ? timeout : expires + .seconds(1))
        let watchdog = Task {
            while ContinuousClock.now < deadline {
                let nap = min(deadline - .now, heartbeat ?? (deadline - .now))
                do { try await Task.sleep(for: nap) } catch { return }
                if let heartbeat, collector.state.withLock({ ContinuousClock.now - $0.lastActivity }) > heartbeat * 2 {
                    collector.state.withLock { $0.missedHeartbeats = true }
                    break
                }
            }
            try? await subscription.unsubscribe()
        }
        defer { watchdog.cancel() }
        var failure: JetStreamError?
        var messages: [JetStreamMessage] = []
        var bytes = 0
        do {
            reading: for try await message in subscription {
                if heartbeat != nil { collector.state.withLock { $0.lastActivity = .now } }
                switch PullStatus(message) {
                case .heartbeat?: continue
                case .ended?: break reading
                case .failed(let reason)?:
                    if messages.isEmpty { failure = JetStreamError(.api, code: 409, message: "\(operation): \(reason)") }
                    break reading
                case nil:
                    messages.append(try JetStreamMessage(message, client: client))
                    bytes += message.payload.readableBytes
                    if messages.count >= batch || maxBytes.map({ bytes >= $0 }) == true { break reading }
                }
            }
        } catch let error as JetStreamError {
            failure = error
        } catch {
            failure = JetStreamError(.connection, message: "\(operation): \(error)")
        }
        watchdog.cancel()
        try? await subscription.unsubscribe()
        if collector.state.withLock({ $0.missedHeartbeats }), messages.isEmpty {
            throw JetStreamError(.timedOut, message: "\(operation): two idle heartbeats (\(heartbeat ?? .zero)) were missed")
        }
        if let failure, messages.isEmpty || failure.kind != .timedOut { throw failure }
        return messages
    }
}
