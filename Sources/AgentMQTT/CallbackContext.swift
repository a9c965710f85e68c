import AgentCore
import CMosquitto
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The state libmosquitto's callbacks share with `MosquittoClient`: a `Mutex`, the event continuation, and the
/// continuations of calls waiting for an acknowledgement.
///
/// The callbacks run on libmosquitto's network thread. They copy what they get, change the state under the lock,
/// and resume continuations or yield events after releasing it. They never call into actors, and they are
/// defined here (not in `main.swift`), so they are not `@MainActor` (swift-style.md 2.9).
/// A PUBLISH's completion callback, as a dictionary value: a closure stored directly in a generic collection is
/// kept in its most general form, and putting it in and taking it out allocated a conversion thunk each time.
struct PublishCompletion: Sendable {
    let done: @Sendable (Bool) -> Void
}

final class CallbackContext: Sendable {
    enum Phase: Sendable, Equatable {
        case idle, connecting, connected, closed
    }

    enum CloseAction: Sendable {
        case sendDisconnect, abort, nothing
    }

    struct State {
        var phase: Phase = .idle
        var connectWaiter: CheckedContinuation<Result<Void, MQTTError>, Never>?
        var connectOutcome: Result<Void, MQTTError>?
        var refusedCode: ConnackCode?
        var closeRequested: MQTTDisconnectReason?
        var publishWaiters: [CInt: CheckedContinuation<Result<Void, MQTTError>, Never>] = [:]
        /// Completion callbacks of `submit(_:payload:done:)`: no task per message.
        var publishCallbacks: [CInt: PublishCompletion] = [:]
        var publishedEarly: Set<CInt> = []
        var subscribeWaiters: [CInt: CheckedContinuation<Result<[Int], MQTTError>, Never>] = [:]
        var subscribedEarly: [CInt: [Int]] = [:]
        var closeWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var expiredCloseWaiters: Set<Int> = []
        var nextWaiterID = 0
        var networkThread: pthread_t?
        var streamFinished = false
        /// Our own duplicate of libmosquitto's socket descriptor while the session lasts (-1 otherwise).
        var socket: Int32 = -1
    }

    let endpoint: ServerEndpoint
    private let continuation: AsyncStream<MQTTEvent>.Continuation
    /// When set (before connecting), events go here instead of the stream, from the network thread.
    private let sink = CallbackSlot<MQTTEvent>()
    let maxIncomingPayload: Int
    let state = Mutex(State())

    init(endpoint: ServerEndpoint, maxIncomingPayload: Int, continuation: AsyncStream<MQTTEvent>.Continuation) {
        self.endpoint = endpoint
        self.maxIncomingPayload = maxIncomingPayload
        self.continuation = continuation
    }

    func setSink(_ sink: @escaping @Sendable (MQTTEvent) -> Void) {
        self.sink.set(sink)
        self.continuation.finish()
    }

    private func deliver(_ event: MQTTEvent) {
        if !self.sink(event) {
            self.continuation.yield(event)
        }
    }

    private func finishStream() {
        self.continuation.finish()
    }

    // MARK: - Called by the client

    func beginConnecting() -> Bool {
        self.state.withLock { state in
            guard state.phase == .idle else { return false }
            state.phase = .connecting
            return true
        }
    }

    var isConnected: Bool { self.state.withLock { $0.phase == .connected } }

    func networkThreadStarted(_ thread: pthread_t) { self.state.withLock { $0.networkThread = thread } }

    /// Keeps a duplicate of the socket libmosquitto has just created, for `shutdownConnection()`. Called after the
    /// connect call and before the network thread starts: the descriptor is then certainly libmosquitto's.
    func holdSocket(_ libraryDescriptor: CInt) {
        guard libraryDescriptor >= 0 else { return }
        let duplicate = fcntl(libraryDescriptor, F_DUPFD_CLOEXEC, 0)
        guard duplicate >= 0 else { return }
        self.state.withLock { state in
            if state.socket >= 0 { close(state.socket) }
            state.socket = duplicate
        }
    }

    /// Shuts the connection down, which wakes the network thread out of a pending connect or a read.
    ///
    /// Through our duplicate, never through the number libmosquitto holds: the network thread closes that one as
    /// soon as the connection ends (before the disconnect callback), and `mosquitto_disconnect`, just called by
    /// whoever aborts, makes it do so. Read on this thread and shut down a moment later, that number could by then
    /// belong to any socket opened in between (another client's connection, a listener). The duplicate is closed
    /// only under this lock, once the session has ended.
    func shutdownConnection() {
        self.state.withLock { state in
            if state.socket >= 0 { _ = shutdown(state.socket, CInt(SHUT_RDWR)) }
        }
    }

    /// Closes the duplicate: the session has ended, there is nothing left to wake.
    func releaseSocket() {
        self.state.withLock { state in
            if state.socket >= 0 { close(state.socket) }
            state.socket = -1
        }
    }

    /// The network thread, once: the caller then joins it.
    func takeNetworkThread() -> pthread_t? {
        self.state.withLock { state in
            defer { state.networkThread = nil }
            return state.networkThread
        }
    }

    /// `mosquitto_loop_forever` returned on the network thread. libmosquitto 2.0.11 returns on some errors (a TLS
    /// handshake that fails after the CONNECT was queued, for example) without calling the disconnect callback:
    /// the session is ended here then, so that nobody waits for a thread that is gone.
    func networkLoopEnded(_ rc: CInt, _ savedErrno: CInt, _ mosq: OpaquePointer?) {
        self.sessionEnded(rc, savedErrno, mosq)
    }

    /// The connect failed before the network thread existed: report and finish.
    func closedWithoutThread(reason: MQTTDisconnectReason, error: MQTTError) {
        self.state.withLock { state in
            state.phase = .closed
            state.connectOutcome = .failure(error)
            state.streamFinished = true
            if state.socket >= 0 { close(state.socket) }
            state.socket = -1
        }
        self.deliver(.disconnected(reason: reason))
        self.finishStream()
    }

    /// The connect timeout passed; true if the connect was still waiting (the caller then aborts).
    func connectTimedOut(after timeout: Duration) -> Bool {
        let waiter: CheckedContinuation<Result<Void, MQTTError>, Never>?
        let outcome = Result<Void, MQTTError>.failure(.connectTimeout(self.endpoint, timeout))
        waiter = self.state.withLock { state in
            guard state.phase == .connecting, state.connectOutcome == nil else { return nil }
            state.connectOutcome = outcome
            if state.closeRequested == nil { state.closeRequested = .aborted }
            let waiter = state.connectWaiter
            state.connectWaiter = nil
            return waiter
        }
        waiter?.resume(returning: outcome)
        return self.state.withLock { $0.phase == .connecting }
    }

    func awaitConnectOutcome() async -> Result<Void, MQTTError> {
        await withCheckedContinuation { continuation in
            let ready: Result<Void, MQTTError>? = self.state.withLock { state in
                if let outcome = state.connectOutcome { return outcome }
                state.connectWaiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func registerPublish(mid: CInt, _ continuation: CheckedContinuation<Result<Void, MQTTError>, Never>) {
        let ready: Result<Void, MQTTError>? = self.state.withLock { state in
            if state.publishedEarly.remove(mid) != nil { return .success(()) }
            if state.phase == .closed { return .failure(.connectionLost(nil)) }
            state.publishWaiters[mid] = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    /// `done` runs once: true on the acknowledgement, false when the session ends first.
    func registerPublish(mid: CInt, _ done: @escaping @Sendable (Bool) -> Void) {
        let ready: Bool? = self.state.withLock { state in
            if state.publishedEarly.remove(mid) != nil { return true }
            if state.phase == .closed { return false }
            state.publishCallbacks[mid] = PublishCompletion(done: done)
            return nil
        }
        if let ready { done(ready) }
    }

    func registerSubscribe(mid: CInt, _ continuation: CheckedContinuation<Result<[Int], MQTTError>, Never>) {
        let ready: Result<[Int], MQTTError>? = self.state.withLock { state in
            if let granted = state.subscribedEarly.removeValue(forKey: mid) { return .success(granted) }
            if state.phase == .closed { return .failure(.connectionLost(nil)) }
            state.subscribeWaiters[mid] = continuation
            return nil
        }
        if let ready { continuation.resume(returning: ready) }
    }

    /// Records that the caller wants the session closed, and says how.
    func requestClose(_ kind: MQTTDisconnectReason) -> CloseAction {
        let (action, finish): (CloseAction, Bool) = self.state.withLock { state in
            switch state.phase {
            case .closed:
                return (.nothing, false)
            case .idle:
                state.phase = .closed
                state.closeRequested = kind
                let finish = !state.streamFinished
                state.streamFinished = true
                return (.nothing, finish)
            case .connecting:
                if state.closeRequested == nil { state.closeRequested = kind }
                return (.abort, false)
            case .connected:
                guard state.closeRequested == nil else { return (.nothing, false) }
                state.closeRequested = kind
                return (kind == .requested ? .sendDisconnect : .abort, false)
            }
        }
        if finish {
            self.deliver(.disconnected(reason: kind))
            self.finishStream()
        }
        return action
    }

    /// True if there is a live session to abort.
    func markAborting() -> Bool {
        self.state.withLock { state in
            guard state.phase == .connecting || state.phase == .connected else { return false }
            if state.closeRequested == nil { state.closeRequested = .aborted }
            return true
        }
    }

    /// Waits until the session has ended; false if `timeout` passed first.
    func awaitClosed(timeout: Duration) async -> Bool {
        let id: Int = self.state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            let waiter: CheckedContinuation<Bool, Never>? = self.state.withLock { state in
                if let waiter = state.closeWaiters.removeValue(forKey: id) { return waiter }
                state.expiredCloseWaiters.insert(id)
                return nil
            }
            waiter?.resume(returning: false)
        }
        let closed = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let ready: Bool? = self.state.withLock { state in
                if state.phase == .closed || state.phase == .idle { return true }
                if state.expiredCloseWaiters.remove(id) != nil { return false }
                state.closeWaiters[id] = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
        timer.cancel()
        return closed
    }

    func finishIfOpen() {
        let finish = self.state.withLock { state in
            let finish = !state.streamFinished
            state.streamFinished = true
            return finish
        }
        if finish { self.finishStream() }
    }

    // MARK: - Called on the network thread

    static func install(on handle: OpaquePointer) {
        mosquitto_connect_callback_set(handle) { mosq, userdata, rc in
            CallbackContext.from(userdata)?.connackReceived(rc, mosq)
        }
        mosquitto_disconnect_callback_set(handle) { mosq, userdata, rc in
            let savedErrno = errno
            CallbackContext.from(userdata)?.sessionEnded(rc, savedErrno, mosq)
        }
        mosquitto_publish_callback_set(handle) { _, userdata, mid in
            CallbackContext.from(userdata)?.published(mid)
        }
        mosquitto_subscribe_callback_set(handle) { _, userdata, mid, count, granted in
            var copy: [Int] = []
            if let granted, count > 0 {
                for i in 0..<Int(count) { copy.append(Int(granted[i])) }
            }
            CallbackContext.from(userdata)?.subscribed(mid, copy)
        }
        mosquitto_message_callback_set(handle) { _, userdata, message in
            // The message and its payload are freed when this returns: copy them (unless too large).
            guard let message = message?.pointee, let topic = message.topic, let context = CallbackContext.from(userdata)
            else { return }
            if Int(message.payloadlen) > context.maxIncomingPayload {
                context.deliver(.oversized(topic: String(cString: topic), bytes: Int(message.payloadlen)))
                return
            }
            let payload: [UInt8]
            if let bytes = message.payload, message.payloadlen > 0 {
                payload = Array(UnsafeRawBufferPointer(start: bytes, count: Int(message.payloadlen)))
            } else {
                payload = []
            }
            let copy = MQTTMessage(
                topic: String(cString: topic), payload: payload,
                qos: MQTTQoS(rawValue: Int(message.qos)) ?? .atLeastOnce, retain: message.retain)
            context.deliver(.message(copy))
        }
    }

    private static func from(_ userdata: UnsafeMutableRawPointer?) -> CallbackContext? {
        guard let userdata else { return nil }
        // The client keeps the context alive for as long as the handle (and so the network thread) exists.
        return Unmanaged<CallbackContext>.fromOpaque(userdata).takeUnretainedValue()
    }

    private func connackReceived(_ rc: CInt, _ mosq: OpaquePointer?) {
        let code = ConnackCode(rawValue: Int(rc))
        let (waiter, outcome, report): (CheckedContinuation<Result<Void, MQTTError>, Never>?, Result<Void, MQTTError>, Bool) =
            self.state.withLock { state in
                let outcome: Result<Void, MQTTError> = rc == 0 ? .success(()) : .failure(.refused(self.endpoint, code))
                guard state.phase == .connecting else { return (nil, outcome, false) }
                if rc == 0 {
                    if state.connectOutcome == nil { state.phase = .connected }
                } else {
                    state.refusedCode = code
                }
                guard state.connectOutcome == nil else { return (nil, outcome, true) }
                state.connectOutcome = outcome
                let waiter = state.connectWaiter
                state.connectWaiter = nil
                return (waiter, outcome, true)
            }
        if rc != 0, let mosq {
            // libmosquitto would reconnect after a refusal; marking the session disconnecting stops it.
            _ = mosquitto_disconnect(mosq)
        }
        guard report else { return }
        self.deliver(.connected(returnCode: code))
        waiter?.resume(returning: outcome)
    }

    private func sessionEnded(_ rc: CInt, _ savedErrno: CInt, _ mosq: OpaquePointer?) {
        let error: MosquittoError? = rc == 0 ? nil : MosquittoError(rawValue: rc, systemErrno: savedErrno)
        struct Ending {
            var reason: MQTTDisconnectReason
            var connectWaiter: (CheckedContinuation<Result<Void, MQTTError>, Never>, Result<Void, MQTTError>)?
            var publishWaiters: [CheckedContinuation<Result<Void, MQTTError>, Never>]
            var publishCallbacks: [@Sendable (Bool) -> Void]
            var subscribeWaiters: [CheckedContinuation<Result<[Int], MQTTError>, Never>]
            var closeWaiters: [CheckedContinuation<Bool, Never>]
            var finish: Bool
        }
        let ending: Ending? = self.state.withLock { state in
            // libmosquitto has closed its descriptor (or its loop has returned): let the connection go.
            if state.socket >= 0 { close(state.socket) }
            state.socket = -1
            guard state.phase != .closed else { return nil }
            let reason: MQTTDisconnectReason
            if let code = state.refusedCode {
                reason = .refused(code)
            } else if let requested = state.closeRequested {
                reason = requested
            } else if state.phase == .connecting {
                if let error, error.rawValue == MosquittoError.code(MOSQ_ERR_TLS)
                    || error.isErrno(ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ETIMEDOUT, EADDRNOTAVAIL)
                {
                    reason = .connectFailed(error)
                } else {
                    reason = .closedBeforeConnack(error)
                }
            } else {
                reason = .connectionLost(error ?? .connectionLost)
            }
            var connect: (CheckedContinuation<Result<Void, MQTTError>, Never>, Result<Void, MQTTError>)? = nil
            if state.phase == .connecting, state.connectOutcome == nil {
                let failure: MQTTError
                switch reason {
                case .connectFailed(let e): failure = .connectFailure(self.endpoint, e)
                case .closedBeforeConnack(let e): failure = .closedBeforeConnack(self.endpoint, e)
                case .refused(let code): failure = .refused(self.endpoint, code)
                default: failure = .connectionLost(error)
                }
                state.connectOutcome = .failure(failure)
                if let waiter = state.connectWaiter { connect = (waiter, .failure(failure)) }
                state.connectWaiter = nil
            }
            state.phase = .closed
            let ending = Ending(
                reason: reason, connectWaiter: connect, publishWaiters: Array(state.publishWaiters.values),
                publishCallbacks: state.publishCallbacks.values.map(\.done),
                subscribeWaiters: Array(state.subscribeWaiters.values), closeWaiters: Array(state.closeWaiters.values),
                finish: !state.streamFinished)
            state.publishWaiters = [:]
            state.publishCallbacks = [:]
            state.subscribeWaiters = [:]
            state.closeWaiters = [:]
            state.streamFinished = true
            return ending
        }
        // Whatever ended the session, mark it disconnecting so that libmosquitto's loop does not reconnect and
        // the network thread exits.
        if let mosq { _ = mosquitto_disconnect(mosq) }
        guard let ending else { return }
        if let (waiter, result) = ending.connectWaiter { waiter.resume(returning: result) }
        for waiter in ending.publishWaiters { waiter.resume(returning: .failure(.connectionLost(error))) }
        for done in ending.publishCallbacks { done(false) }
        for waiter in ending.subscribeWaiters { waiter.resume(returning: .failure(.connectionLost(error))) }
        if ending.finish {
            self.deliver(.disconnected(reason: ending.reason))
            self.finishStream()
        }
        for waiter in ending.closeWaiters { waiter.resume(returning: true) }
    }

    private func published(_ mid: CInt) {
        enum Completion {
            case callback(@Sendable (Bool) -> Void)
            case waiter(CheckedContinuation<Result<Void, MQTTError>, Never>)
            case early
        }
        // The telemetry path (a completion callback) first: one lookup and no result value on the way.
        let completion: Completion = self.state.withLock { state in
            if let completion = state.publishCallbacks.removeValue(forKey: mid) { return .callback(completion.done) }
            if let waiter = state.publishWaiters.removeValue(forKey: mid) { return .waiter(waiter) }
            state.publishedEarly.insert(mid)
            return .early
        }
        switch completion {
        case .callback(let done): done(true)
        case .waiter(let waiter): waiter.resume(returning: .success(()))
        case .early: break
        }
    }

    private func subscribed(_ mid: CInt, _ granted: [Int]) {
        let waiter = self.state.withLock { state in
            guard let waiter = state.subscribeWaiters.removeValue(forKey: mid) else {
                state.subscribedEarly[mid] = granted
                return nil as CheckedContinuation<Result<[Int], MQTTError>, Never>?
            }
            return waiter
        }
        waiter?.resume(returning: .success(granted))
    }
}
