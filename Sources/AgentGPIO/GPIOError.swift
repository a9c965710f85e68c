import AgentCore
import SystemPackage

/// A libgpiod call failed. The message names the chip or line and says what to do about it; `errno` keeps the
/// system's code.
public struct GPIOError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Sendable {
            case chipNotFound, chipNumber, ambiguousChip, lineNotFound, lineBusy, permissionDenied, biasUnsupported
            case requestFailed, ioFailed
        }
        private let value: Value
        private init(_ value: Value) { self.value = value }

        public static let chipNotFound = Code(.chipNotFound)
        /// A chip given by number (`4`): numbers change between kernels, labels do not.
        public static let chipNumber = Code(.chipNumber)
        /// Two chips carry the label given.
        public static let ambiguousChip = Code(.ambiguousChip)
        public static let lineNotFound = Code(.lineNotFound)
        /// Another program or a kernel driver holds the line.
        public static let lineBusy = Code(.lineBusy)
        /// The user may not open `/dev/gpiochipN` (not in the `gpio` group).
        public static let permissionDenied = Code(.permissionDenied)
        /// The kernel or the chip's driver cannot set pull-up/pull-down.
        public static let biasUnsupported = Code(.biasUnsupported)
        public static let requestFailed = Code(.requestFailed)
        public static let ioFailed = Code(.ioFailed)

        public var description: String { self.value.rawValue }
    }

    public let code: Code
    public let message: String
    public let errno: Errno?

    public init(_ code: Code, _ message: String, errno: Errno? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { self.message }

    /// The same problem as the core reports it.
    public var agentError: AgentError { AgentError(.hardwareUnavailable, self.message, cause: self) }
}
