import Foundation
import NATSProto
import Synchronization
import Transport

/// A pull request: `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with the batch's bounds.
struct PullRequest: Encodable {
    var batch: Int
    var expires: Duration?
    var maxBytes: Int?
    var noWait: Bool
    var heartbeat: Duration?

    enum CodingKeys: String, CodingKey {
        case batch, expires, maxBytes = "max_bytes", noWait = "no_wait", heartbeat = "idle_heartbeat"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(batch, forKey: .batch)
        if let expires { try container.encode(duration: expires, forKey: .expires) }
        try container.encode(ifPresent: maxBytes, forKey: .maxBytes)
        try container.encode(ifTrue: noWait, forKey: .noWait)
        if let heartbeat { try container.encode(duration: heartbeat, forKey: .heartbeat) }
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

/// Messages a pull gathered, shared between the task that reads them and the one that watches
/// the clock.
final class PullCollector: Sendable {
    struct State {
        var messages: [JetStreamMessage] = []
        var bytes = 0
        var lastActivity = ContinuousClock.now
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
        let body: Data
        do {
            subscription = try await client.subscribe(to: inbox)
            body = try JetStreamJSON.encode(
                PullRequest(batch: batch, expires: noWait ? nil : expires, maxBytes: maxBytes, noWait: noWait, heartbeat: heartbeat))
            try await client.publish(body, to: apiPrefix + "." + operation, replyTo: inbox)
        } catch let error as NATSError {
            throw JetStreamError.from(error, doing: operation)
        } catch {
            throw JetStreamError(.usage, message: "\(operation): \(error)")
        }
        let collector = PullCollector()
        let client = self.client
        // The server ends the request at `expires`; a margin covers the trip back.
        let deadline = ContinuousClock.now + (noWait ? timeout : expires + .seconds(1))
        let outcome = await withTaskGroup(of: Result<Void, JetStreamError>?.self) { group -> Result<Void, JetStreamError> in
            group.addTask {
                do {
                    for try await message in subscription {
                        collector.state.withLock { $0.lastActivity = .now }
                        switch PullStatus(message) {
                        case .heartbeat?: continue
                        case .ended?: return .success(())
                        case .failed(let reason)?:
                            let empty = collector.state.withLock { $0.messages.isEmpty }
                            return empty ? .failure(JetStreamError(.api, code: 409, message: "\(operation): \(reason)")) : .success(())
                        case nil:
                            let delivered = try JetStreamMessage(message, client: client)
                            let full = collector.state.withLock { state -> Bool in
                                state.messages.append(delivered)
                                state.bytes += message.payload.readableBytes
                                return state.messages.count >= batch || maxBytes.map { state.bytes >= $0 } == true
                            }
                            if full { return .success(()) }
                        }
                    }
                    return nil  // cancelled by the clock
                } catch let error as JetStreamError {
                    return .failure(error)
                } catch {
                    return .failure(JetStreamError(.connection, message: "\(operation): \(error)"))
                }
            }
            group.addTask {
                while ContinuousClock.now < deadline {
                    let nap = min(deadline - .now, heartbeat ?? .milliseconds(250))
                    do { try await Task.sleep(for: nap) } catch { return nil }
                    if let heartbeat, collector.state.withLock({ ContinuousClock.now - $0.lastActivity }) > heartbeat * 2 {
                        return .failure(JetStreamError(.timedOut, message: "\(operation): two idle heartbeats (\(heartbeat)) were missed"))
                    }
                }
                return .success(())  // expired: what came is the batch
            }
            var result: Result<Void, JetStreamError> = .success(())
            while let finished = await group.next() {
                if let finished {
                    result = finished
                    break
                }
            }
            group.cancelAll()
            return result
        }
        try? await subscription.unsubscribe()
        let messages = collector.state.withLock { $0.messages }
        if case .failure(let error) = outcome, messages.isEmpty || error.kind != .timedOut { throw error }
        return messages
    }
}
