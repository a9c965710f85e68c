import AgentCore
import AgentHost
import AgentTLS
import CMosquitto
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `mosquitto_lib_init` runs once per process, the first time a client is made (a global `let` is initialised
/// exactly once, thread-safely).
private let mosquittoLibraryInitialized: CInt = mosquitto_lib_init()

/// One MQTT 3.1.1 session over libmosquitto: connect once, subscribe, publish with completion on the
/// acknowledgement, read events, disconnect.
///
/// The client owns one `struct mosquitto` handle and frees it in `deinit`. The network thread stays inside: it
/// runs `mosquitto_loop_forever` (what `mosquitto_loop_start` does, on a thread this client starts and joins, so
/// that it knows when the loop has ended even when libmosquitto does not call the disconnect callback). Callbacks
/// copy what they get, update a `Mutex`, resume continuations and yield to `events`; they never touch actors.
///
/// **Connect once, report the disconnect.** libmosquitto reconnects by itself after a lost connection or a
/// refused CONNACK. This client stops that: when the session ends for any reason it reports
/// `.disconnected(reason:)`, finishes `events`, and the network thread exits. A new session needs a new client;
/// the agent reconnects with its own backoff.
public final class MosquittoClient: Sendable {
    public let options: MQTTConnectOptions
    /// Events in order: `.connected`, `.message`…, then one `.disconnected`, after which the stream finishes.
    public let events: AsyncStream<MQTTEvent>

    // Safe to share: libmosquitto guards its state with its own mutexes in threaded mode; this class calls only
    // the thread-safe entry points from other threads, and `deinit` frees the handle after joining the thread.
    private nonisolated(unsafe) let handle: OpaquePointer
    private let context: CallbackContext
    private let logger: Logger

    /// The libmosquitto version, e.g. `2.0.11` (`mosquitto_lib_version`).
    public static var libraryVersion: String {
        var major: CInt = 0
        var minor: CInt = 0
        var revision: CInt = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }

    /// Creates the handle and applies every option; nothing goes on the network yet.
    ///
    /// The corresponding C functions are `mosquitto_new`, `mosquitto_int_option`, `mosquitto_username_pw_set`,
    /// `mosquitto_tls_set`, `mosquitto_tls_opts_set` and `mosquitto_tls_insecure_set`.
    /// - Throws: `MQTTError.library` when libmosquitto refuses an option (a missing CA file, for example).
    public init(_ options: MQTTConnectOptions, logger: Logger = Logger(label: "tb-agent.mqtt")) throws(MQTTError) {
        _ = mosquittoLibraryInitialized
        self.options = options
        self.logger = logger
        let (stream, continuation) = AsyncStream.makeStream(of: MQTTEvent.self, bufferingPolicy: .unbounded)
        self.events = stream
        let context = CallbackContext(endpoint: options.endpoint, maxIncomingPayload: options.maxIncomingPayload, continuation: continuation)
        self.context = context
        // libmosquitto refuses a client id it cannot send (mosquitto_new then fails with an unset errno), and C
        // strings end at a NUL: such credentials fail on every attempt, which is a rejection, not a network error.
        do {
            try Self.checkSendable(options)
        } catch {
            continuation.finish()
            throw error
        }
        guard let handle = mosquitto_new(options.clientID, options.cleanSession, Unmanaged.passUnretained(context).toOpaque())
        else {
            continuation.finish()
            throw .library(operation: "mosquitto_new", MosquittoError(rawValue: MosquittoError.code(MOSQ_ERR_ERRNO), systemErrno: errno))
        }
        // Configured before `self.handle` is set: if this throws, `self` is not fully initialised, `deinit` does
        // not run, and the handle is destroyed here exactly once.
        do {
            try Self.configure(handle, options)
        } catch {
            continuation.finish()
            mosquitto_destroy(handle)
            throw error
        }
        CallbackContext.install(on: handle)
        self.handle = handle
    }

    private static func configure(_ handle: OpaquePointer, _ options: MQTTConnectOptions) throws(MQTTError) {
        func call(_ operation: String, _ body: () -> CInt) throws(MQTTError) {
            do {
                try mosquittoCall(body)
            } catch {
                throw .library(operation: operation, error)
            }
        }
        // The loop runs on this client's own thread: libmosquitto must lock and wake it as with loop_start.
        try call("mosquitto_threaded_set") { mosquitto_threaded_set(handle, true) }
        // The PUBLISHes awaiting their PUBACK; libmosquitto queues the rest and sends them from its own thread.
        try call("mosquitto_int_option(MOSQ_OPT_SEND_MAXIMUM)") {
            mosquitto_int_option(handle, MOSQ_OPT_SEND_MAXIMUM, CInt(clamping: min(max(options.maxInFlight, 1), 65535)))
        }
        // ThingsBoard and tb-sim speak MQTT 3.1.1; libmosquitto 2.0 defaults to it, but say so.
        try call("mosquitto_int_option(MOSQ_OPT_PROTOCOL_VERSION)") {
            mosquitto_int_option(handle, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311)
        }
        if let username = options.username {
            // MQTT 3.1.1 allows a password only with a user name.
            do {
                try mosquittoCall { mosquitto_username_pw_set(handle, username.revealed, options.password?.revealed) }
            } catch {
                // MOSQ_ERR_MALFORMED_UTF8 (a control character, a noncharacter) or MOSQ_ERR_INVAL (too long): the
                // stored credentials themselves are unusable.
                if error == .malformedUTF8 || error == .invalidArgument { throw .credentialsUnusable(what: "user name", error) }
                throw .library(operation: "mosquitto_username_pw_set", error)
            }
        }
        if let tls = options.tls {
            let caPath: String? = tls.caFile == nil ? "/etc/ssl/certs" : nil
            if tls.caFile == nil {
                try call("mosquitto_int_option(MOSQ_OPT_TLS_USE_OS_CERTS)") {
                    mosquitto_int_option(handle, MOSQ_OPT_TLS_USE_OS_CERTS, 1)
                }
            }
            try call("mosquitto_tls_set (check [server.tls] ca_file, cert_file and key_file: each must exist and be readable)") {
                // The password callback refuses: an encrypted key fails instead of OpenSSL prompting on a terminal.
                mosquitto_tls_set(handle, tls.caFile, caPath, tls.certificateFile, tls.keyFile) { _, _, _, _ in 0 }
            }
            // SSL_VERIFY_PEER (1): the server's certificate chain is always verified.
            try call("mosquitto_tls_opts_set") { mosquitto_tls_opts_set(handle, 1, nil, nil) }
            try call("mosquitto_tls_insecure_set") { mosquitto_tls_insecure_set(handle, tls.insecureSkipHostnameCheck) }
        }
    }

    /// Throws `.credentialsUnusable` for a client id libmosquitto would refuse, or a NUL in any credential.
    private static func checkSendable(_ options: MQTTConnectOptions) throws(MQTTError) {
        let fields: [(String, String?)] = [
            ("client id", options.clientID), ("user name", options.username?.revealed), ("password", options.password?.revealed),
        ]
        for case (let what, let text?) in fields where text.utf8.contains(0) {
            throw .credentialsUnusable(what: what, .malformedUTF8)
        }
        let id = options.clientID
        let rc = mosquitto_validate_utf8(id, CInt(clamping: id.utf8.count))
        if id.isEmpty || rc != MosquittoError.code(MOSQ_ERR_SUCCESS) {
            throw .credentialsUnusable(what: "client id", MosquittoError(rawValue: id.isEmpty ? MosquittoError.invalidArgument.rawValue : rc))
        }
    }

    deinit {
        self.stopNetworkThread(force: true)
        self.context.releaseSocket()
        mosquitto_destroy(self.handle)
        self.context.finishIfOpen()
    }

    // MARK: - Connecting

    /// Opens the TCP (or TLS) connection, sends CONNECT and waits for the CONNACK.
    ///
    /// The corresponding C functions are `mosquitto_connect_async` and `mosquitto_loop_forever` (on the network
    /// thread).
    /// - Throws: `.refused` for a non-zero CONNACK, `.unreachable`, `.unresolvable`, `.tlsFailed`,
    ///   `.closedBeforeConnack` (a silent close), `.connectTimeout`, `.alreadyUsed`.
    public func connect() async throws(MQTTError) {
        do {
            try await self.connectOnce()
        } catch {
            guard let tls = self.options.tls else { throw error }
            // libmosquitto only says "certificate verify failed" (2.0.11, bookworm), or, over a newer OpenSSL
            // (2.0.21 with OpenSSL 3.5, trixie), just that the connection closed with EPROTO: one more handshake
            // tells why.
            let endpoint: ServerEndpoint
            let cause: MosquittoError?
            switch error {
            case .tlsFailed(let e, let c, nil): (endpoint, cause) = (e, c)
            case .closedBeforeConnack(let e, let c): (endpoint, cause) = (e, c)
            default: throw error
            }
            let options = self.options
            let detail = await OffPool.run {
                TLSDiagnosis.diagnose(
                    host: options.host, port: options.port, caFile: tls.caFile, verifyHostname: !tls.insecureSkipHostnameCheck)
            }
            if case .closedBeforeConnack = error, detail == nil { throw error }  // the handshake is fine: not TLS
            throw .tlsFailed(endpoint, cause ?? .tls, detail: detail)
        }
    }

    private func connectOnce() async throws(MQTTError) {
        guard self.context.beginConnecting() else { throw .alreadyUsed }
        let endpoint = self.options.endpoint
        self.logger.debug(
            "Connecting",
            metadata: [
                "mqtt.server": "\(endpoint)", "mqtt.client_id": "\(self.options.clientID)",
                "mqtt.username": "\(self.options.username == nil ? "(none)" : "(set)")",
                "mqtt.tls": "\(self.options.tls != nil)",
            ])
        var keepalive = Int(self.options.keepalive.components.seconds)
        if keepalive != 0 && keepalive < 5 { keepalive = 5 }  // libmosquitto refuses 1-4
        let rc = mosquitto_connect_async(self.handle, self.options.host, CInt(self.options.port), CInt(keepalive))
        if rc != MosquittoError.code(MOSQ_ERR_SUCCESS) {
            let error = MosquittoError(rawValue: rc, systemErrno: errno)
            let failure = MQTTError.connectFailure(endpoint, error)
            self.context.closedWithoutThread(reason: .connectFailed(error), error: failure)
            throw failure
        }
        // Before the network thread exists, the socket is certainly libmosquitto's: keep a duplicate to wake it with.
        self.context.holdSocket(mosquitto_socket(self.handle))
        let start = Unmanaged.passRetained(NetworkThreadStart(handle: self.handle, context: self.context)).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            guard let argument else { return nil }
            let start = Unmanaged<NetworkThreadStart>.fromOpaque(argument).takeRetainedValue()
            let rc = mosquitto_loop_forever(start.handle, -1, 1)
            start.context.networkLoopEnded(rc, errno, start.handle)
            return nil
        }, start)
        if created != 0 {
            Unmanaged<NetworkThreadStart>.fromOpaque(start).release()
            let error = MosquittoError(rawValue: MosquittoError.code(MOSQ_ERR_ERRNO), systemErrno: created)
            let failure = MQTTError.library(operation: "pthread_create (the network thread)", error)
            _ = mosquitto_disconnect(self.handle)
            self.context.closedWithoutThread(reason: .connectFailed(error), error: failure)
            throw failure
        }
        self.context.networkThreadStarted(thread)

        let timeout = self.options.connectTimeout
        let timer = Task { [context = self.context] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled else { return }
            if context.connectTimedOut(after: timeout) { self.closeNow() }
        }
        let result = await withTaskCancellationHandler {
            await self.context.awaitConnectOutcome()
        } onCancel: {
            self.closeNow()
        }
        timer.cancel()
        try result.get()
        self.logger.debug("Connected", metadata: ["mqtt.server": "\(endpoint)"])
    }

    // MARK: - Subscribing and publishing

    /// Subscribes and waits for the SUBACK.
    ///
    /// The corresponding C function is `mosquitto_subscribe`.
    /// - Returns: what the server granted (`.refused` for 0x80).
    public func subscribe(_ topicFilter: String, qos: MQTTQoS) async throws(MQTTError) -> SubscriptionGrant {
        guard self.context.isConnected else { throw .notConnected }
        let result: Result<[Int], MQTTError> = await withCheckedContinuation { continuation in
            var mid: CInt = 0
            let rc = mosquitto_subscribe(self.handle, &mid, topicFilter, CInt(qos.rawValue))
            guard rc == MosquittoError.code(MOSQ_ERR_SUCCESS) else {
                continuation.resume(
                    returning: .failure(.library(operation: "mosquitto_subscribe", MosquittoError(rawValue: rc, systemErrno: errno))))
                return
            }
            self.context.registerSubscribe(mid: mid, continuation)
        }
        let granted = try result.get()
        return SubscriptionGrant(rawValue: granted.first ?? 0x80)
    }

    /// Publishes and waits until it is done: for QoS 0 until written to the socket, for QoS 1 until the PUBACK.
    ///
    /// The corresponding C function is `mosquitto_publish`.
    /// - Throws: `.notConnected`, `.connectionLost` when the session ends first, `.library` (payload too large…).
    public func publish(_ topic: String, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, retain: Bool = false)
        async throws(MQTTError)
    {
        try await self.submit(topic, payload: payload, qos: qos, retain: retain).acknowledged()
    }

    /// Hands a message to libmosquitto now, before returning, so that messages go out in the order of the calls
    /// (separate `publish` tasks could start in any order); await the receipt for the acknowledgement.
    ///
    /// The corresponding C function is `mosquitto_publish`.
    /// - Throws: `.notConnected`, `.library` (payload too large…).
    public func submit(_ topic: String, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, retain: Bool = false)
        throws(MQTTError) -> PublishReceipt
    {
        guard self.context.isConnected else { throw .notConnected }
        var mid: CInt = 0
        let rc = payload.withUnsafeBytes { bytes in
            mosquitto_publish(self.handle, &mid, topic, CInt(bytes.count), bytes.baseAddress, CInt(qos.rawValue), retain)
        }
        guard rc == MosquittoError.code(MOSQ_ERR_SUCCESS) else {
            throw .library(operation: "mosquitto_publish", MosquittoError(rawValue: rc, systemErrno: errno))
        }
        return PublishReceipt(context: self.context, mid: mid)
    }

    /// Hands a QoS 1 (or 0) message to libmosquitto now and calls `done` once, from the network thread: true on
    /// the PUBACK (for QoS 0 once written), false when the session ends first. No task and no continuation per
    /// message: the telemetry path's cost stays near libmosquitto's own.
    ///
    /// - Throws: `.notConnected`, `.library` (payload too large…); `done` is then never called.
    public func submit(
        _ topic: String, payload: [UInt8], qos: MQTTQoS = .atLeastOnce, done: @escaping @Sendable (Bool) -> Void
    ) throws(MQTTError) {
        let receipt = try self.submit(topic, payload: payload, qos: qos, retain: false)
        self.context.registerPublish(mid: receipt.mid, done)
    }

    /// Sends events to `sink` (from the network thread) instead of `events`, which finishes at once. Set it
    /// before `connect()`.
    public func deliverEvents(to sink: @escaping @Sendable (MQTTEvent) -> Void) {
        self.context.setSink(sink)
    }

    // MARK: - Ending

    /// Sends DISCONNECT, waits for the session to end and for the network thread to exit.
    ///
    /// The corresponding C function is `mosquitto_disconnect`.
    public func disconnect() async {
        switch self.context.requestClose(.requested) {
        case .sendDisconnect:
            let rc = mosquitto_disconnect(self.handle)
            if rc != MosquittoError.code(MOSQ_ERR_SUCCESS) { self.closeNow() }
        case .abort:
            self.closeNow()
        case .nothing:
            break
        }
        if !(await self.context.awaitClosed(timeout: .seconds(5))) {
            self.closeNow()
            _ = await self.context.awaitClosed(timeout: .seconds(5))
        }
        self.stopNetworkThread(force: false)
    }

    /// Closes the connection now, without DISCONNECT (for timeouts and cancellation). Returns at once; the session
    /// reports `.disconnected(.aborted)` (or what ended it first).
    public func closeNow() {
        guard self.context.markAborting() else { return }
        // Marks the session disconnecting, so that libmosquitto's loop does not reconnect.
        _ = mosquitto_disconnect(self.handle)
        // Wakes the network thread out of a pending connect or a read.
        self.context.shutdownConnection()
    }

    /// Joins the network thread once. With `force`, the session is aborted first (deinit).
    private func stopNetworkThread(force: Bool) {
        guard let thread = self.context.takeNetworkThread() else { return }
        if force {
            _ = self.context.requestClose(.aborted)
            _ = mosquitto_disconnect(self.handle)
            self.context.shutdownConnection()
        }
        // No pthread_cancel: the loop leaves on its own once the session is marked disconnecting (it wakes at
        // least once a second).
        _ = pthread_join(thread, nil)
    }
}

/// What the network thread needs, retained for its lifetime.
private final class NetworkThreadStart: Sendable {
    // The thread only passes the handle to mosquitto_loop_forever; the client joins the thread before freeing it.
    nonisolated(unsafe) let handle: OpaquePointer
    let context: CallbackContext

    init(handle: OpaquePointer, context: CallbackContext) {
        self.handle = handle
        self.context = context
    }
}

/// A message handed to libmosquitto; `acknowledged()` waits until it is done: for QoS 0 written to the socket,
/// for QoS 1 acknowledged by the server (PUBACK). Await it exactly once.
public struct PublishReceipt: Sendable {
    let context: CallbackContext
    /// The message id libmosquitto gave the message.
    public let mid: CInt

    /// - Throws: `.connectionLost` when the session ends first.
    public func acknowledged() async throws(MQTTError) {
        let result: Result<Void, MQTTError> = await withCheckedContinuation { continuation in
            self.context.registerPublish(mid: self.mid, continuation)
        }
        try result.get()
    }
}

/// What the server granted for one subscription: 0, 1, 2, or 0x80 (refused).
public struct SubscriptionGrant: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    public var qos: MQTTQoS? { self.rawValue == 0x80 ? nil : MQTTQoS(rawValue: self.rawValue) }
    public var isRefused: Bool { self.qos == nil }
    public var description: String { self.qos.map { "granted \($0)" } ?? "refused (0x\(String(self.rawValue, radix: 16)))" }
}

extension MQTTError {
    /// Classifies a failure of the TCP/TLS connect itself.
    static func connectFailure(_ endpoint: ServerEndpoint, _ error: MosquittoError) -> MQTTError {
        switch error.rawValue {
        case MosquittoError.lookup.rawValue: return .unresolvable(endpoint, error)
        case MosquittoError.tls.rawValue: return .tlsFailed(endpoint, error)
        default: return .unreachable(endpoint, error)
        }
    }
}
