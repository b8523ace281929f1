import Synchronization
import Transport

/// Listens to the sentinels' `+switch-master` announcements for one master, and reports each
/// switch (the new address) to `onSwitch`: a client then drops its connections to the old
/// master at once, instead of learning of the failover from a failed or READONLY command. One
/// sentinel at a time; the next one when it cannot be reached.
final class SentinelWatcher: Sendable {
    private struct State {
        var task: Task<Void, Never>?
        var subscriber: RedisSubscriber?
        var isStopped = false
    }

    private let configuration: RedisConfiguration
    private let sentinel: RedisSentinelConfiguration
    private let onSwitch: @Sendable (String) -> Void
    private let state = Mutex(State())
    private let switches = Atomic<Int>(0)

    /// How many switches of the master were reported.
    var switchCount: Int { switches.load(ordering: .relaxed) }

    init(configuration: RedisConfiguration, sentinel: RedisSentinelConfiguration, onSwitch: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.sentinel = sentinel
        self.onSwitch = onSwitch
    }

    /// Starts listening, once.
    func start() {
        state.withLock { state in
            guard state.task == nil, !state.isStopped else { return }
            state.task = Task { [self] in await listen() }
        }
    }

    /// Stops listening for good.
    func stop() {
        let (task, subscriber) = state.withLock { state -> (Task<Void, Never>?, RedisSubscriber?) in
            state.isStopped = true
            defer {
                state.task = nil
                state.subscriber = nil
            }
            return (state.task, state.subscriber)
        }
        task?.cancel()
        subscriber?.close()
    }

    private func listen() async {
        var next = 0
        while !Task.isCancelled {
            let address = sentinel.sentinels[next % sentinel.sentinels.count]
            next += 1
            let subscriber = RedisSubscriber(configuration: sentinel.configuration(for: address, like: configuration))
            let stopped = state.withLock { state -> Bool in
                if !state.isStopped { state.subscriber = subscriber }
                return state.isStopped
            }
            if stopped {
                subscriber.close()
                return
            }
            do {
                for try await message in try await subscriber.subscribe(["+switch-master"]) where !message.isGap {
                    // "<master-name> <old-ip> <old-port> <new-ip> <new-port>"
                    let fields = message.text.split(separator: " ")
                    if fields.count == 5, fields[0] == sentinel.masterName {
                        switches.add(1, ordering: .relaxed)
                        onSwitch("\(fields[3]):\(fields[4])")
                    }
                }
            } catch {
                configuration.logger.debug("could not listen to a sentinel", metadata: ["sentinel": "\(address)", "error": "\(error)"])
            }
            subscriber.close()
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}
