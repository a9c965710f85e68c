/// What the hardware says about a board: each value normalized, nil when the board has none.
public struct HardwareFacts: Sendable, Equatable {
    /// The board serial: lowercase, no whitespace or NULs, leading zeros kept; nil when absent or all zeros.
    public var serial: String?
    /// The MAC of the chosen interface: 12 lowercase hex digits, no separators.
    public var mac: String?
    /// The interface the MAC was read from (`eth0`).
    public var macInterface: String?
    /// `etc/machine-id`: 32 lowercase hex digits.
    public var machineId: String?
    /// `etc/hostname`, trimmed.
    public var hostname: String?
    /// The board model (`Raspberry Pi 4 Model B Rev 1.4`), for people and board checks; never part of the name.
    public var model: String?

    public init(
        serial: String? = nil, mac: String? = nil, macInterface: String? = nil, machineId: String? = nil,
        hostname: String? = nil, model: String? = nil
    ) {
        self.serial = serial
        self.mac = mac
        self.macInterface = macInterface
        self.machineId = machineId
        self.hostname = hostname
        self.model = model
    }

    /// The value a source gives, if any.
    public func value(of source: IdentitySource) -> String? {
        switch source {
        case .serial: return self.serial
        case .mac: return self.mac
        case .machineId: return self.machineId
        case .hostname: return self.hostname
        }
    }
}

/// The device name derived from the hardware, with what it was derived from.
public struct DerivedIdentity: Sendable, Equatable {
    /// The ThingsBoard device name: non-blank, at most 255 characters.
    public let name: String
    /// The source `{id}` resolved to; without `{id}`, the first source the template names; nil for a literal name.
    public let source: IdentitySource?
    /// Everything read from the hardware, used or not.
    public let facts: HardwareFacts
    /// One line per source tried: what it found and why it was used or skipped (`tb-agent identity --explain`).
    public let explanation: [String]

    public init(name: String, source: IdentitySource?, facts: HardwareFacts, explanation: [String]) {
        self.name = name
        self.source = source
        self.facts = facts
        self.explanation = explanation
    }
}

extension IdentitySource {
    /// How a person calls the source in messages.
    public var displayName: String {
        switch self {
        case .serial: return "board serial"
        case .mac: return "MAC address"
        case .machineId: return "machine id"
        case .hostname: return "host name"
        }
    }
}
