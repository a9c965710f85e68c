/// The error the core and the command line report: a stable code, a message a person can act on (naming the
/// thing and the fix), and the underlying cause. Messages never contain secrets (see `Secret`).
public struct AgentError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case invalidConfiguration, identityUnavailable, hardwareUnavailable, storageFailure
            case provisioningRefused, provisioningFailed, credentialsRejected, brokerUnavailable
            case protocolViolation, timeout, usage
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let invalidConfiguration = Code(.invalidConfiguration)
        public static let identityUnavailable = Code(.identityUnavailable)
        public static let hardwareUnavailable = Code(.hardwareUnavailable)
        public static let storageFailure = Code(.storageFailure)
        /// The server answered NOT_FOUND or FAILURE: a person must change something on the server or the board.
        public static let provisioningRefused = Code(.provisioningRefused)
        /// No usable answer: closed, timed out, unparseable.
        public static let provisioningFailed = Code(.provisioningFailed)
        /// CONNACK 5: the server does not know (or no longer accepts) the stored credentials.
        public static let credentialsRejected = Code(.credentialsRejected)
        public static let brokerUnavailable = Code(.brokerUnavailable)
        public static let protocolViolation = Code(.protocolViolation)
        public static let timeout = Code(.timeout)
        public static let usage = Code(.usage)

        public var description: String { self.value.rawValue }
    }

    public let code: Code
    public let message: String
    public let cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        guard let cause = self.cause else { return self.message }
        return "\(self.message) (\(cause))"
    }
}
